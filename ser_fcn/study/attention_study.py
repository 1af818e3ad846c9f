"""`make attention-check`: the paper's premise, planted, end to end.

Builds a planted demo corpus (ser_fcn/corpora/demo_corpus.py, `planted=True`), trains on ONE fold
(the same fold and seed for every model) FCN + attention (experiments/fcn_attn_random.yaml), FCN +
mean pooling (fcn_meanpool.yaml, lambda = 0) and, unless left out, the segmented AlexNet baseline
(alexnet_random.yaml), each with the tables' CPU profile (experiments/profiles/cpu.yaml) changed by
cpu_planted.yaml (a fixed 20 epochs, the last one tested), then
writes each model's test WA / UA (its results.json), the attention localisation ratio
(study/attention_check.py) and a figure of planted test utterances with their attention and
the region marked.

`python -m ser_fcn attention-study [--dir runs/attention_check] [--utterances_per_speaker 80]
[--fold 1] [--models fcn_attn fcn_meanpool alexnet_random]` -> results/attention_check.{md,json,png}.
A model whose folder already has results.json is not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..corpora.demo_corpus import PLANTED_BACKGROUND, generate_demo_corpus, read_regions
from ..inference.checkpoint import load_checkpoint
from ..utils import atomic
from .attention_check import check_attention, describe
from .cv_launch import fit_command, launch_fold, sigterm_stops_the_fold
from ..utils.run_folder import RESULTS
from .cv_plan import Fold, Run
from ..figures.panels import Panel, draw_panels
from ..models.receptive_field import encoder_grid

# the recipe of the tables on a CPU, then the study's fixed epochs (the last one tested)
PROFILES = ["experiments/profiles/cpu.yaml", "experiments/profiles/cpu_planted.yaml"]
# name -> (the tables' experiment file, what the report calls it)
MODELS = {
    "fcn_attn": ("experiments/fcn_attn_random.yaml", "FCN + attention (lambda 0.3)"),
    "fcn_meanpool": ("experiments/fcn_meanpool.yaml", "FCN + mean pooling (lambda 0)"),
    "alexnet_random": ("experiments/alexnet_random.yaml", "AlexNet on 3 s segments (random init)"),
}
STUDY_DIR = "runs/attention_check"
OUT_STEM = "results/attention_check"
UTTERANCES_PER_SPEAKER = 80  # fold 1: ~350 training utterances, ~45 validation
WALL_FILE = "study_wall.json"
FIGURE_UTTERANCES = 4


def train(name: str, study_dir: Path, corpus_root: Path, fold: int, echo: bool = True) -> dict:
    """Fit one model on the planted corpus (unless its results.json exists); its results + wall time."""
    experiment, _ = MODELS[name]
    run_dir = study_dir / name
    if not (run_dir / RESULTS).is_file():
        shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run: start over
        run_dir.mkdir(parents=True)
        cmd = fit_command([experiment, *PROFILES], Run(Fold(fold, False)), run_dir,
                          ["--data.root", str(corpus_root), "--trainer.logger", "false"])
        started = time.monotonic()
        code = launch_fold(cmd, run_dir / "fit.log", echo=echo)
        if code != 0 or not (run_dir / RESULTS).is_file():
            raise RuntimeError(f"{name}: fit exited with {code}; see {run_dir / 'fit.log'}")
        atomic.write_json(run_dir / WALL_FILE, {"wall_s": time.monotonic() - started, "command": " ".join(cmd)})
    results = json.loads((run_dir / RESULTS).read_text())
    wall = json.loads((run_dir / WALL_FILE).read_text()) if (run_dir / WALL_FILE).is_file() else {}
    return {**results, **wall, "run_dir": str(run_dir)}


def constant_answer(results: dict) -> bool:
    """True when every test utterance got the same predicted class (nothing learned)."""
    columns = np.asarray(results["confusion_matrix"]).sum(axis=0)
    return int((columns > 0).sum()) <= 1


def localisation_figure(check: dict, out: Path) -> Path:
    """Spectrogram + attention of the first correctly classified test utterance of each class
    (emotional classes first), region marked: one a class, not the best ratios."""
    module, cfg, _ = load_checkpoint(check["ckpt"])
    first_of_class = {}
    for record in [r for r in check["utterances"] if r["correct"]] or check["utterances"]:
        first_of_class.setdefault(record["label"], record)
    picked = sorted(first_of_class.values(), key=lambda r: (r["label"] == PLANTED_BACKGROUND, r["label"]))
    picked = picked[:FIGURE_UTTERANCES]
    root = Path(check["corpus"])
    panels = []
    for record in picked:
        wav = next(root.glob(f"Session*/sentences/wav/*/{record['utterance_id']}.wav"))
        spec = torch.from_numpy(_spectrogram(module, wav, cfg))
        _, alpha = _attention(module, spec)
        panels.append(Panel(spec.numpy(), alpha, f"{record['utterance_id']} ({record['label']}, predicted "
                                                   f"{record['predicted']})\nratio {record['ratio']:.2f}x"))
    fig = draw_panels(panels, cfg, encoder_grid(module.net.encoder))
    n = len(panels)
    for j, record in enumerate(picked):  # fig.axes starts with the 2 x n grid, row by row
        for axis in (fig.axes[j], fig.axes[n + j]):
            for edge in record["region_s"]:
                axis.axvline(edge, color="white", linestyle="--", linewidth=1.2)
    fig.suptitle("planted emotional region (dashed) and the FCN's 2-D attention", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def _spectrogram(module, wav: Path, cfg) -> np.ndarray:
    """The (F, T) log spectrogram of `wav` with the run's settings (what its feature cache holds)."""
    from ..corpora.audio import load_audio
    from ..data.features import log_spectrogram

    return log_spectrogram(load_audio(wav, cfg.sample_rate), cfg).numpy().astype(np.float32)


def _attention(module, spec: torch.Tensor):
    from ..training.forward import attention_of

    return attention_of(module, spec)


def portable(obj, base: Path | None = None):
    """`obj` (JSON-like) with every path under `base` (default: the working folder, the repo root)
    written relative to it, so the committed results/attention_check.* name no folder of the
    machine that ran the study."""
    prefix = str((base or Path.cwd()).absolute()) + os.sep
    if isinstance(obj, str):
        return obj.replace(prefix, "")
    if isinstance(obj, dict):
        return {k: portable(v, base) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, base) for v in obj]
    return obj


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _ratio_cell(check: dict | None) -> str:
    if check is None:
        return "— (no attention)"
    s = check["correct_emotional"]
    return "— (no correct emotional test utterance)" if not s["n"] else f"{s['median']:.2f}x / {s['mean']:.2f}x (n={s['n']})"


def markdown(rows: dict[str, dict], checks: dict[str, dict], corpus: dict, figure: Path | None) -> str:
    """results/attention_check.md: one line per model, then what was run."""
    lines = ["# The paper's premise, planted: does the 2-D attention find the emotion?", "",
             f"| Model | test WA % | test UA % | localisation ratio, correct test utts with an emotional region (label not "
             f"{PLANTED_BACKGROUND}): median / mean | constant answer | wall |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        wall = f"{r['wall_s'] / 60:.1f} min" if "wall_s" in r else "—"
        lines.append(f"| {MODELS[name][1]} | {_pct(r.get('wa'))} | {_pct(r.get('ua'))} | {_ratio_cell(checks.get(name))} "
                     f"| {'YES: nothing learned' if constant_answer(r) else 'no'} | {wall} |")
    first = next(iter(rows.values()))
    lines += ["", f"- Corpus: planted demo corpus (SYNTHETIC, not IEMOCAP), {corpus['utterances_per_speaker']} utterances "
              f"per speaker, {corpus['root']}: every utterance neutral speech except one region (planted_regions.csv).",
              f"- ONE fold (fold {first.get('fold')}: test speaker {first.get('test_speaker')}), the same seed for every "
              f"model; each model's experiment file (random init) with the tables' CPU recipe changed by the study's "
              f"profile ({' + '.join(f'`{p}`' for p in PROFILES)}: a fixed 20 epochs, the last one tested). Figures from one fold of a few hundred utterances are noisy.",
              "- Localisation ratio: attention mass inside the region / the region's share of the utterance, on the "
              "encoder's time cells (receptive-field centres), attention summed over frequency; 1.0 = uniform "
              f"(mean pooling gives exactly 1.0). A {PLANTED_BACKGROUND} utterance's region is spoken like the rest of it, "
              "so the column leaves those out; per-class figures below.",
              "- Confusion matrices (rows true, columns predicted, classes " + ", ".join(first.get("classes", [])) + "): "
              + "; ".join(f"{name} {r['confusion_matrix']}" for name, r in rows.items()) + "."]
    for name, check in checks.items():
        lines.append(f"- {name}: {describe(check)}.")
    if figure:
        lines.append(f"- Figure: {figure}: the first correctly classified test utterance of each class (dashed lines: "
                     "the planted region).")
    lines.append(f"- Made by `python -m ser_fcn attention-study` on {time.strftime('%Y-%m-%d %H:%M')}; commands in "
                 f"each run folder's {WALL_FILE}.")
    return "\n".join(lines) + "\n"


def run_study(study_dir: Path, utterances_per_speaker: int, fold: int, models: list[str], out_stem: str) -> Path:
    corpus = generate_demo_corpus(study_dir / "corpus", utterances_per_speaker=utterances_per_speaker, planted=True)
    read_regions(corpus.root)  # fail early on a broken sidecar
    with sigterm_stops_the_fold():  # `kill` of the study stops the fit it is running too
        rows = {name: train(name, study_dir, corpus.root, fold) for name in models}
    checks = {name: check_attention(rows[name]["ckpt_path"], corpus.root)
              for name in models if name.startswith("fcn_")}
    figure = localisation_figure(checks["fcn_attn"], Path(out_stem + ".png")) if "fcn_attn" in checks else None
    rows, checks = portable(rows), portable(checks)
    atomic.write_json(out_stem + ".json", {"models": rows, "localisation": checks})
    corpus_info = {"utterances_per_speaker": utterances_per_speaker, "root": portable(str(corpus.root))}
    return atomic.write_text(out_stem + ".md", markdown(rows, checks, corpus_info, figure))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ser_fcn attention-study",
                                description="planted corpus -> FCN + attention, mean pooling, AlexNet baseline on one fold "
                                            "-> WA/UA and the attention localisation ratio")
    p.add_argument("--dir", default=STUDY_DIR, help=f"corpus and run folders (default {STUDY_DIR})")
    p.add_argument("--utterances_per_speaker", type=int, default=UTTERANCES_PER_SPEAKER)
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--out", default=OUT_STEM, help=f"stem of the .md, .json and .png written (default {OUT_STEM})")
    a = p.parse_args(argv)
    try:
        out = run_study(Path(a.dir), a.utterances_per_speaker, a.fold, a.models, a.out)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        sys.exit(f"error: {err}")
    print(Path(out).read_text())
    print(f"wrote {out}")
