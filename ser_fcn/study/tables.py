"""The paper's Tables I and II next to this package's cross-validated figures.

    python -m ser_fcn table1 [--profile auto|cpu|quick|full|FILE] [--iemocap DIR] [--weights-dir DIR] [--folds 5|10]
                             [--protocol paper|common|FILE] [--emobox DIR --audio-root DIR] [--seeds N]
                             [--max-row-hours H]
    python -m ser_fcn table2 [same options]
    python -m ser_fcn table2 --corpus emodb|ravdess --root DIR [--profile real_speech|FILE] [--seeds N]

With `--corpus emodb` (or ravdess) Table II's comparison runs on that corpus instead (its
leave-one-speaker-out folds: 10 for EmoDB, 24 for RAVDESS): FCN + attention, FCN + mean pooling
and the segmented AlexNet, all from random init and one profile (default `real_speech`, the
recipe for real speech), beside the figures published under the same protocol (references.py),
written to `results/<corpus>.md` with `results/<corpus>_ablation.md` appended when it exists;
runs in `runs/tables/<profile>-<corpus>/`. Its rows, corpora and claims: corpus_tables.py.

`--profile auto` (the default) is `full` with a CUDA GPU, else `cpu`; without a GPU each row's
epoch is measured first and a row over `--max-row-hours` is reported as needing a GPU (budget.py).
`--seeds N` trains every fold with the seeds 0..N-1 (crossval.py). Each 'here' cell is the
mean and 95 % confidence interval over the folds x seeds runs; every other row is compared on
UA with the FCN + attention row by a paired Wilcoxon test (`choose_reference`, stats.py).

`--protocol common` adds experiments/protocols/common.yaml after each experiment file (all
sessions, exc as hap) and, in Table II, published rows under that protocol (references.py).

Every row with an experiment file runs through the cross-validation runner (resumable: a
fold that has its results.json is not trained again) in
`runs/tables/<profile>-<demo|iemocap>/<experiment>/`, with `experiments/<experiment>.yaml`
and then the profile `experiments/profiles/<profile>.yaml`. The markdown is rendered from
the aggregates only (`render_table`) and written to `results/table<N>.md`.

Fine-tuned rows need ImageNet weights: `<weights-dir>/<arch>.pth` (a torchvision state
dict), else torchvision's download. When neither is possible the row is reported as not
run, never trained from random weights under a fine-tuned label.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..utils import atomic
from ..utils.run_folder import RESULTS
from .budget import BUDGET, epoch_seconds, measure_epoch, needs_gpu_note, row_hours, trainer_setting
from ..corpora.readers import DEFAULT as DEFAULT_CORPUS, CORPORA
from .crossval import run_crossval, setup_record
from .cv_aggregate import aggregate
from .cv_plan import (AGGREGATE, SEEDS, corpus_sessions, count_trainings, emobox_folds, emobox_overrides,
                      fold_list, override_value, run_list)
from .corpus_tables import CORPUS_TABLES, REAL_SPEECH, SPEAKER_ROWS, published_outcome
from .references import COMMON_PROTOCOL
from .rows import Outcome, PairedTests, Row
from .table_markdown import markdown_table, paired_tests, protocol_line, public_words
from .wandb_report import log_table

TABLE1 = [
    Row("AlexNet Random-init", "alexnet_random", 66.5, 54.8),
    Row("AlexNet Finetuning", "alexnet_finetune", 67.9, 57.3),
    Row("VGGNet-16 Random-init", "vgg16_random", 65.3, 54.8),
    Row("VGGNet-16 Finetuning", "vgg16_finetune", 66.8, 56.7),
]
TABLE2 = [
    Row("Our FCN+Attention", "fcn_attn", 70.4, 63.9),  # ImageNet init, as the paper
    Row("Our FCN+Attention, random init (not in the paper)", "fcn_attn_random", None, None),
    Row("CNN+LSTM Model1 in [9]", None, 68.8, 59.4),  # Satt et al. 2017, as quoted by the paper
    Row("CNN+LSTM Model2 in [9]", None, 67.3, 62.0),
]
MEANPOOL = Row("FCN + mean pooling (λ = 0), not in the paper", "fcn_meanpool", None, None)
OFFLINE = "not run: ImageNet weights unavailable (offline)"
AUTO = "auto"  # --profile auto: full on a machine with a CUDA GPU, else cpu
MAX_ROW_HOURS = 3.0  # without a GPU, a row estimated above this (at its epoch cap) is reported as needing one:
# on a 2-core CPU AlexNet's rows need ~1 h, VGG16's ~16x that; the margin absorbs a loaded machine
PAPER_PROTOCOL = "paper"  # base.yaml as is: IEMOCAP improvised, neu/hap/sad/ang, exc left out, 5 folds
# --- ImageNet weights -----------------------------------------------------------------------


def net_init_args(config_files: list[Path]) -> dict:
    """`model.net` (class_path and init_args merged) as the YAML files set it, later files winning."""
    net: dict = {}
    for f in config_files:
        cfg = (yaml.safe_load(Path(f).read_text()) or {}).get("model") or {}
        given = cfg.get("net") or {}
        if given.get("class_path") and given["class_path"] != net.get("class_path"):
            net = {"class_path": given["class_path"]}
        net.update(given.get("init_args") or {})
    return net


def find_imagenet(arch: str, weights_dir: Path | None) -> tuple[str | None, str]:
    """(value for `model.net.init_args.weights` or None, description) for torchvision `arch`."""
    if weights_dir is not None and (weights_dir / f"{arch}.pth").is_file():
        path = (weights_dir / f"{arch}.pth").resolve()
        return str(path), f"ImageNet ({path})"
    import torch

    from ..models.weights import IMAGENET_WEIGHTS, imagenet_state_dict

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_WEIGHTS[arch].url).name
    if cached.is_file():
        return "imagenet", f"ImageNet (torchvision, {cached})"
    try:
        imagenet_state_dict(arch, "imagenet")  # downloads into torch's cache
    except Exception as err:  # noqa: BLE001 - offline, proxy …: reported in the table
        print(f"  {arch}: {err}", flush=True)
        return None, OFFLINE + (f"; no {arch}.pth in {weights_dir}" if weights_dir else "")
    return "imagenet", "ImageNet (torchvision download)"


def describe_init(net: dict) -> str:
    w = net.get("weights")
    return "random" if w is None else "ImageNet (torchvision)" if w == "imagenet" else f"ImageNet ({w})"


# --- running the rows -----------------------------------------------------------------------


@dataclass
class Setup:
    profile: str
    profile_file: Path
    experiments: Path
    runs: Path  # runs/tables/<profile>-<corpus>
    folds: int = 5
    iemocap: str | None = None
    weights_dir: Path | None = None
    overrides: list[str] = field(default_factory=list)
    verbose: bool = False
    protocol_file: Path | None = None  # experiments/protocols/<name>.yaml; None: the paper's
    emobox: str | None = None
    audio_root: str | None = None
    seeds: int = SEEDS
    max_row_hours: float | None = None  # no GPU: a row whose measured estimate exceeds this is not trained
    corpus: str = DEFAULT_CORPUS  # another corpus (corpora/readers.py): read from `root`
    root: str | None = None
    render_only: bool = False  # train nothing: each row from the runs its folder already holds

    def corpus_overrides(self) -> list[str]:
        """The `fit` arguments that select the corpus (none for IEMOCAP or the demo corpus)."""
        if self.corpus != DEFAULT_CORPUS:
            return ["--data.corpus", self.corpus, "--data.root", str(self.root)]
        return ["--data.root", self.iemocap] if self.iemocap else []


def gpu_needed(configs: list[Path], overrides: list[str], s: Setup, out: Path, reuse: bool = False) -> str | None:
    """On a machine without a GPU, when `s.max_row_hours` is set and the row still has runs to
    train: measure its epoch (budget.py) and return the "needs a GPU" note if the row would
    exceed the budget at its epoch cap; else None (train it). The measurement is kept in the
    row's folder (BUDGET); `reuse` (--render-only) reads it back when the row's setup is the
    same, so re-rendering a table does not re-time the row on a machine busy with other runs."""
    import torch

    if s.max_row_hours is None or torch.cuda.is_available():
        return None
    runs = s.folds * s.seeds
    if (out / AGGREGATE).is_file() and json.loads((out / AGGREGATE).read_text()).get("complete"):
        return None
    files = [str(c) for c in configs]
    setup = setup_record(files, overrides)
    kept = json.loads((out / BUDGET).read_text()) if (out / BUDGET).is_file() else {}
    if reuse and kept.get("setup") == setup:
        measured = kept["measured"]
        print(f"  the epoch time measured on {kept.get('when', '?')} (kept in {out / BUDGET})", flush=True)
    else:
        measured = measure_epoch(files, overrides)
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out / BUDGET, {"setup": setup, "measured": measured, "when": time.strftime("%Y-%m-%d %H:%M")})
    epoch_s = epoch_seconds(measured, trainer_setting(files, overrides, "limit_train_batches"))
    cap = int(trainer_setting(files, overrides, "max_epochs"))
    sessions = s.folds if s.emobox else corpus_sessions(files, overrides)[0]
    trainings = count_trainings(run_list(fold_list(s.folds, None, sessions, swap=not s.emobox), s.seeds))
    hours = row_hours(epoch_s, cap, trainings)
    print(f"  a training epoch measured at {epoch_s:.0f} s on this machine: at most {hours:.1f} h for {runs} runs "
          f"({trainings} training runs) of up to {cap} epochs (budget {s.max_row_hours:g} h per row)", flush=True)
    return needs_gpu_note(measured, epoch_s, cap, runs, trainings) if hours > s.max_row_hours else None


def rendered_outcome(row: Row, runs: Path) -> Outcome:
    """`--render-only`: the row from the finished runs in its folder (none: not trained), so a
    table can be written while, or after, its rows train elsewhere; missing runs show in its cells.
    A row without runs still gets `--max-row-hours`'s measured verdict (run_row)."""
    out = runs / str(row.experiment)
    if not any(out.glob(f"*/{RESULTS}")):
        return Outcome(row, note="not trained (the table was written with --render-only)")
    agg = aggregate(out, name=row.experiment)
    return Outcome(row, agg=agg, init=resolved_init(agg))


def run_row(row: Row, s: Setup) -> Outcome:
    if row.experiment is None:
        return Outcome(row, note="not reproduced here")
    exp_file = s.experiments / f"{row.experiment}.yaml"
    configs = [exp_file, *([s.protocol_file] if s.protocol_file else []), s.profile_file]
    overrides = list(s.overrides) + s.corpus_overrides() + emobox_overrides(s.emobox, s.audio_root)
    if s.render_only and any((s.runs / row.experiment).glob(f"*/{RESULTS}")):
        return rendered_outcome(row, s.runs)  # its runs, whatever weights the machine has now
    net = net_init_args(configs)
    given = override_value(overrides, "model.net.init_args.weights")
    if given is not None:  # the command line wins over the files
        net["weights"] = None if given.lower() in ("null", "none") else given
    if net.get("weights") == "imagenet":
        arch = net.get("arch") or "alexnet"  # the FCN's encoder is AlexNet's
        weights, init = find_imagenet(arch, s.weights_dir)
        if weights is None:
            print(f"{row.system}: {init}", flush=True)
            return Outcome(row, note=init)
        if weights != "imagenet":
            overrides += ["--model.net.init_args.weights", weights]
    if s.render_only:
        rendered = rendered_outcome(row, s.runs)
        if rendered.agg is None and s.max_row_hours is not None:  # never trained: what it would cost, measured
            rendered.note = gpu_needed(configs, overrides, s, s.runs / row.experiment, reuse=True) or rendered.note
        return rendered
    note = gpu_needed(configs, overrides, s, s.runs / row.experiment)
    if note is not None:
        print(f"{row.system}: {note}", flush=True)
        return Outcome(row, note=note)
    agg = run_crossval([str(c) for c in configs], s.runs / row.experiment, s.folds, overrides,
                       echo=s.verbose, name=row.experiment, emobox=s.emobox, seeds=s.seeds)
    return Outcome(row, agg=agg, init=resolved_init(agg))


def resolved_init(agg: dict) -> str | None:
    """The initialisation the row's runs used, read from their resolved config (so a
    command-line override shows), or None when no fold has run."""
    resolved = agg.get("resolved_config") or {}
    return describe_init(resolved["net"]) if resolved.get("net") else None


def load_outcome(row: Row, runs: Path) -> Outcome | None:
    """A row's outcome from an aggregate that an earlier run left in `runs`."""
    path = runs / str(row.experiment) / AGGREGATE
    if not path.is_file():
        return None
    agg = json.loads(path.read_text())
    if "n_runs" not in agg:  # written before seeds and intervals: aggregate its runs again
        names = [f["name"] for f in agg.get("folds") or []] + list(agg.get("missing_folds") or [])
        agg = aggregate(path.parent, names or None, name=agg.get("experiment"))
    return Outcome(row, agg=agg, init=resolved_init(agg))


def best_baseline(runs: Path) -> Outcome:
    """The Table I row with the highest mean UA among those that have an aggregate in `runs`."""
    found = [o for o in (load_outcome(r, runs) for r in TABLE1) if o and o.agg.get("n_runs")]
    if not found:
        return Outcome(Row("Best baseline of Table I", None, None, None), note="no Table I aggregate yet (run `make table1`)")
    best = max(found, key=lambda o: (o.agg["ua"]["mean"], o.agg["wa"]["mean"]))
    r = best.row
    best.row = Row(f"Best baseline of Table I here (by UA): {r.system}", r.experiment, r.wa, r.ua)
    best.extra["paper_note"] = " (Table I)"
    return best


# --- markdown (table_markdown.py) ------------------------------------------------------


def render_table(number: int, outcomes: list[Outcome], *args, paired: PairedTests | None = None, **kwargs) -> str:
    """The table's markdown (table_markdown.markdown_table, same arguments); the paired tests
    default to those against `choose_reference` among `outcomes`."""
    paired = paired or paired_tests(outcomes, *choose_reference(number, outcomes))
    return markdown_table(number, outcomes, *args, paired=paired, **kwargs)


FCN_EXPERIMENTS = ("fcn_attn", "fcn_attn_random")  # the reference of the paired tests, in this order


def choose_reference(number: int, outcomes: list[Outcome], runs: Path | None = None) -> tuple[Outcome | None, str]:
    """The row every other row is tested against, and why: the FCN + attention row that ran
    (`fcn_attn`, else `fcn_attn_random`); for Table I, whose rows have no FCN, its aggregate in
    `runs` when Table II was run there, else Table I's best row by mean UA."""
    ran = [o for o in outcomes if o.agg and o.agg.get("n_runs")]
    for experiment in FCN_EXPERIMENTS:
        found = next((o for o in ran if o.row.experiment == experiment), None)
        if found is None and number == 1 and runs is not None:
            row = next(r for r in TABLE2 if r.experiment == experiment)
            found = load_outcome(row, runs)
            found = found if found and found.agg.get("n_runs") else None
        if found is not None:
            where = "" if any(o is found for o in outcomes) else f", from `{runs / experiment / AGGREGATE}`"
            return found, f"the FCN + attention row that ran{where}"
    if number == 1 and ran:
        best = max(ran, key=lambda o: (o.agg["ua"]["mean"], o.agg["wa"]["mean"]))
        return best, "no FCN + attention aggregate in this runs folder: Table I's best row by mean UA"
    return None, "no row to compare with"


# --- command line ---------------------------------------------------------------------------


def protocol_path(protocol: str, experiments: Path) -> Path | None:
    """None for the paper's protocol (base.yaml as is), else the protocol's YAML file."""
    if protocol == PAPER_PROTOCOL:
        return None
    as_file = Path(protocol)
    path = as_file if as_file.suffix in (".yaml", ".yml") else experiments / "protocols" / f"{protocol}.yaml"
    if not path.is_file():
        sys.exit(f"error: protocol {protocol!r}: {path} not found")
    return path


def default_profile() -> str:
    """`full` (the paper's settings) on a machine with a CUDA GPU, else `cpu` (every row to
    convergence on the demo corpus within a 2-core CPU's budget)."""
    import torch

    return "full" if torch.cuda.is_available() else "cpu"


def setup_from_args(a: argparse.Namespace, name: str, profile_file: Path, overrides: list[str]) -> tuple[Setup, str]:
    """The Setup of a table run and its corpus tag (demo, iemocap, emobox-<corpus>): the
    protocol's file, the fold count (EmoBox: its fold_k folders) and the runs folder."""
    protocol_file = protocol_path(a.protocol, a.experiments)
    if a.emobox and a.iemocap:
        sys.exit("error: give --iemocap or --emobox, not both")
    if a.corpus == DEFAULT_CORPUS and a.root:  # --corpus iemocap --root DIR is --iemocap DIR
        if a.iemocap and a.iemocap != a.root:
            sys.exit("error: give --iemocap or --root, not both")
        a.iemocap = a.root
    if a.corpus != DEFAULT_CORPUS:
        if a.iemocap or a.emobox or protocol_file is not None:
            sys.exit(f"error: --corpus {a.corpus} reads --root; --iemocap, --emobox and --protocol do not apply")
        if not a.root:
            sys.exit(f"error: --corpus {a.corpus} needs --root (the corpus's folder)")
        sessions, speaker_folds = corpus_sessions([], ["--data.corpus", a.corpus, "--data.root", a.root, *overrides])
        folds = a.folds or (2 * sessions if speaker_folds else sessions)
        corpus = a.corpus
    else:
        folds = a.folds or (len(emobox_folds(a.emobox)) if a.emobox else 5)
        corpus = f"emobox-{Path(a.emobox).resolve().name}" if a.emobox else "iemocap" if a.iemocap else "demo"
    runs = a.runs / (f"{name}-{corpus}" + ("" if protocol_file is None else f"-{Path(a.protocol).stem}"))
    if a.seeds < 1:
        sys.exit(f"error: --seeds {a.seeds}: give at least 1")
    return Setup(name, profile_file, a.experiments, runs, folds, a.iemocap, a.weights_dir, overrides, a.verbose,
                 protocol_file, a.emobox, a.audio_root, a.seeds, a.max_row_hours or None, a.corpus, a.root,
                 a.render_only), corpus


def main(number: int, argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog=f"python -m ser_fcn table{number}",
        allow_abbrev=False,
        description=f"Run (or resume) the cross-validations of the paper's Table {'I' if number == 1 else 'II'} "
        "and write the markdown table. Unknown arguments are passed to every fold's `fit`.",
    )
    p.add_argument("--profile", default=AUTO,
                   help=f"auto (default: full with a CUDA GPU, else cpu; with --corpus emodb|ravdess: {REAL_SPEECH}) | "
                   f"cpu | quick | full | {REAL_SPEECH} | a profile YAML")
    p.add_argument("--max-row-hours", type=float, default=MAX_ROW_HOURS,
                   help="without a GPU: measure each row's epoch first and do not train a row whose runs would take "
                   f"longer than this at the epoch cap; the table says it needs a GPU (default {MAX_ROW_HOURS:g}; 0: no check)")
    p.add_argument("--iemocap", help="IEMOCAP_full_release folder (default: the synthetic demo corpus)")
    p.add_argument("--corpus", default=DEFAULT_CORPUS, choices=list(CORPORA),
                   help=f"{DEFAULT_CORPUS} (default) or, table2 only, a corpus read from --root: emodb, ravdess "
                   "(writes results/<corpus>.md)")
    p.add_argument("--root", help="the folder of --corpus (for iemocap the same as --iemocap)")
    p.add_argument("--weights-dir", type=Path, help="folder holding alexnet.pth / vgg16.pth (torchvision ImageNet state dicts)")
    p.add_argument("--folds", type=int, help="5 (default), or 10 with the speaker swap; with --emobox: its number of folds")
    p.add_argument("--protocol", default=PAPER_PROTOCOL,
                   help="paper (default: improvised, exc left out) | common (experiments/protocols/common.yaml: "
                   "all sessions, exc as hap; adds published reference rows to Table II) | a protocol YAML")
    p.add_argument("--seeds", type=int, default=SEEDS,
                   help=f"train every fold with the seeds 0..N-1 (default {SEEDS}); more pairs for the paired tests")
    p.add_argument("--emobox", help="an EmoBox corpus folder (label_map.json, fold_k/): its folds instead of IEMOCAP's sessions")
    p.add_argument("--audio-root", help="with --emobox: the folder its wav paths are relative to")
    p.add_argument("--experiments", type=Path, default=Path("experiments"))
    p.add_argument("--runs", type=Path, default=Path("runs") / "tables", help="where the folds are trained")
    p.add_argument("--results", type=Path, default=Path("results"), help="where table<N>.md is written")
    p.add_argument("--verbose", action="store_true", help="also echo each fold's training output")
    p.add_argument("--render-only", action="store_true", help="train nothing: write the table from the runs already "
                   "in the runs folder (a row's missing runs show in its cells; a row without any: not trained, or "
                   "with --max-row-hours on a CPU its epoch is measured and the table says what it would cost)")
    a, overrides = p.parse_known_args(argv)
    kind = CORPUS_TABLES.get(a.corpus)
    if kind and number != 2:
        sys.exit(f"error: --corpus {a.corpus}: its comparison (FCN rows and the segmented AlexNet) is `table2 --corpus {a.corpus}`")
    if a.profile == AUTO and kind:
        a.profile = REAL_SPEECH
        print(f"profile: {a.profile} (--profile {AUTO} with --corpus {a.corpus}: the recipe for real speech)", flush=True)
    elif a.profile == AUTO:
        a.profile = default_profile()
        print(f"profile: {a.profile} (--profile {AUTO}: {'a' if a.profile == 'full' else 'no'} CUDA GPU here)", flush=True)
    as_file = Path(a.profile)
    profile_file = as_file if as_file.suffix in (".yaml", ".yml") else a.experiments / "profiles" / f"{a.profile}.yaml"
    if not profile_file.is_file():
        sys.exit(f"error: profile {a.profile!r}: {profile_file} not found")
    if a.weights_dir is not None and not a.weights_dir.is_dir():
        sys.exit(f"error: --weights-dir {a.weights_dir}: no such folder")
    name = profile_file.stem
    s, corpus = setup_from_args(a, name, profile_file, overrides)
    protocol_file, a.folds = s.protocol_file, s.folds
    start = time.monotonic()
    rows = TABLE1 if number == 1 else SPEAKER_ROWS if kind else [r for r in TABLE2 if r.experiment] + [MEANPOOL]
    outcomes = {r.system: run_row(r, s) for r in rows}
    if kind:
        ordered = list(outcomes.values()) + [published_outcome(r) for r in kind.published]
    elif number == 2:
        ordered = [outcomes[r.system] if r.experiment else Outcome(r, note="not reproduced here") for r in TABLE2]
        ordered += [best_baseline(s.runs), outcomes[MEANPOOL.system]]
    else:
        ordered = list(outcomes.values())
    command = " ".join(["python -m ser_fcn", f"table{number}", *public_words(argv if argv is not None else sys.argv[2:])])
    common = protocol_file is not None and protocol_file.stem == "common"
    references = COMMON_PROTOCOL if number == 2 and (common or corpus == "emobox-iemocap") else None
    paired = paired_tests(ordered, *choose_reference(number, ordered, s.runs))  # for the markdown and W&B
    line = f"- Protocol of the 'here' columns: {kind.protocol}." if kind else \
        protocol_line(Path(a.protocol).stem, protocol_file, a.emobox)
    ablation = a.results / f"{corpus}_ablation.md"
    md = render_table(number, ordered, name, profile_file, a.folds, command, line, references,
                      seeds=s.seeds, paired=paired, corpus=a.corpus if kind else None,
                      ablation=ablation.read_text() if kind and ablation.is_file() else None)
    a.results.mkdir(parents=True, exist_ok=True)
    variant = ("" if protocol_file is None else f"-{Path(a.protocol).stem}") + (f"-{corpus}" if a.emobox else "")
    out = a.results / (f"{corpus}.md" if kind else f"table{number}{variant}.md")  # the paper-protocol table keeps its name
    atomic.write_text(out, md)
    log_table(number, ordered, md, s.runs, paired)
    print("\n" + md + f"\nwrote {out} ({(time.monotonic() - start) / 60:.1f} min)", flush=True)
    incomplete = [o.row.experiment for o in outcomes.values() if o.agg is not None and not o.agg["complete"]]
    if incomplete:
        sys.exit(f"incomplete: {', '.join(incomplete)}; rerun the same command to train the missing runs")
