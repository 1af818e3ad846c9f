"""A recipe ablation: the validation UA of training settings, one line per setting.

    python -m ser_fcn ablation --out results/emodb_ablation.md \\
        "paper defaults=runs/ablation/base" "+ lr 5e-4, cosine, class weights=runs/ablation/no_augment" \\
        "+ SpecAugment=runs/ablation/recipe"

Each `LABEL=DIR` is a `cv` output folder: one setting trained on the same folds as the others.
A fold's figure is the validation UA of its best epoch (the epoch `fit` keeps and tests), read
from the per-epoch history in its results.json. Settings are chosen on these figures alone:
test figures are never read here. Each line also gives the setting's configs and overrides
(cv.json, folder values shown as <DIR>), so it can be run again. A fold still training (or stopped mid-way: `cv` resumes it)
is read from its checkpoints/last.ckpt and marked with the epochs it has seen; its line then
has no mean, since the settings are compared on finished folds only.

The best epoch is a maximum over noisy epochs: a setting that smooths the validation curve
loses its lucky peak. `--last N` adds a second table over the finished folds: the mean
validation UA of each fold's last N epochs beside the best epoch's, each against the reference
line with how many folds rose and the paired Wilcoxon test (study/stats.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ..utils import atomic
from ..utils.errors import ConfigError, CorpusNotFoundError
from ..utils.run_folder import LAST_CKPT, RESULTS
from .cv_plan import SETUP, fold_of, seed_of
from .table_markdown import public_words

VAL_UA = "val/ua"


def best_validation(results: dict) -> tuple[float, int] | None:
    """(best validation UA, its epoch) of one fold's results.json, or None without a history."""
    history = [h for h in results.get("history") or [] if VAL_UA in h]
    if not history:
        return None
    best = max(history, key=lambda h: (h[VAL_UA], -h["epoch"]))  # the first epoch of the best UA
    return best[VAL_UA], best["epoch"]


def last_mean(results: dict, n: int) -> float | None:
    """Mean validation UA of the last `n` epochs of one fold's results.json (None: fewer epochs)."""
    history = [h[VAL_UA] for h in results.get("history") or [] if VAL_UA in h]
    return statistics.fmean(history[-n:]) if len(history) >= n > 0 else None


def finished_runs(folder: Path, last: int) -> dict[str, dict]:
    """fold name -> {"best", "last"} of every finished fold (results.json) in a cv folder, with
    the fields `stats.run_key` pairs runs by (fold, swap, seed)."""
    out = {}
    for path in sorted(folder.glob(f"fold*/{RESULTS}")):
        results = json.loads(path.read_text())
        best = best_validation(results)
        if best is None:
            continue
        name = path.parent.name
        out[name] = {"fold": results.get("fold", name), "swap_speakers": results.get("swap_speakers"),
                     "seed": seed_of(name), "best": best[0], "last": last_mean(results, last)}
    return out


def _unfinished(run: Path) -> tuple[float, int, int] | None:
    """(best validation UA, its epoch, epochs seen) of a fold without results.json, from last.ckpt."""
    if not (run / LAST_CKPT).is_file():
        return None
    import torch

    history = torch.load(run / LAST_CKPT, map_location="cpu", weights_only=False).get("ser_fcn_history") or []
    best = best_validation({"history": history})
    return None if best is None else (*best, len(history))


def read_setting(folder: Path) -> dict[str, tuple[float, int]]:
    """fold name -> (best validation UA, epoch) of every finished fold in a cv folder; a fold still
    training has a third item, the epochs it has seen (read from its last.ckpt)."""
    if not folder.is_dir():
        raise CorpusNotFoundError(f"{folder}: no such cv folder (give LABEL=DIR with the --out of a `cv` run)")
    out = {}
    for run in sorted(p for p in folder.glob("fold*") if p.is_dir()):
        if (run / RESULTS).is_file():
            best = best_validation(json.loads((run / RESULTS).read_text()))
        else:
            best = _unfinished(run)
        if best is not None:
            out[run.name] = best
    return out


def _cell(result) -> str:
    cell = f"{100 * result[0]:.1f} (epoch {result[1]})"
    return cell + (f", unfinished: {result[2]} epochs so far" if len(result) > 2 else "")


def _setup(folder: Path) -> str:
    path = folder / SETUP
    if not path.is_file():
        return ""
    setup = json.loads(path.read_text())
    words = [f"--config {c}" for c in setup.get("configs", [])] + list(setup.get("overrides", []))
    return " ".join(public_words(words))  # `--data.root <DIR>`: no folder of this machine


def render(settings: list[tuple[str, Path]], against: str | None = None, only: list[str] | None = None,
           last: int | None = None) -> str:
    """Markdown: one line per setting, its per-fold validation UA (%) and their mean; 'change'
    against the line above, or against the line labelled `against` (a recipe and its
    leave-one-out lines: the recipe less each of its settings). `only`: these folds' columns
    (a setting read from a ten-fold table's folder, beside probes run on two of its folds).
    `last`: add the table of `_paired_table` (best epoch and last `last` epochs, paired tests)."""
    read = [(label, folder, read_setting(folder)) for label, folder in settings]
    if against is not None and against not in [label for label, _, _ in read]:
        raise ConfigError(f"--against {against!r}: no setting has that label "
                          f"(labels: {', '.join(repr(label) for label, _, _ in read)})")
    if only:
        missing = [f for f in only if not any(f in r for _, _, r in read)]
        if missing:
            raise ConfigError(f"--folds: no setting has a run of {', '.join(missing)}")
        read = [(label, folder, {f: v for f, v in r.items() if f in only}) for label, folder, r in read]
    # seed 0's folds, then seed 1's, ...; within a seed fold1..fold5, then their swaps
    folds = sorted({f for _, _, r in read for f in r}, key=lambda f: (seed_of(f), len(fold_of(f)), fold_of(f)))
    lines = [
        "| setting | " + " | ".join(f"{f} val UA" for f in folds) + " | mean | change |",
        "|---|" + "---|" * (len(folds) + 2),
    ]
    def mean_of(r: dict) -> float | None:
        complete = all(f in r and len(r[f]) == 2 for f in folds)
        return statistics.fmean(r[f][0] for f in folds) if complete and folds else None

    reference = next((mean_of(r) for label, _, r in read if label == against), None)
    previous = None
    for label, _, r in read:
        cells = [_cell(r[f]) if f in r else "not run" for f in folds]
        mean = mean_of(r)
        base = previous if against is None else None if label == against else reference
        change = f"{100 * (mean - base):+.1f}" if mean is not None and base is not None else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'' if mean is None else f'{100 * mean:.1f}'} | {change} |")
        previous = mean if mean is not None else previous
    versus = "the line above" if against is None else f"the line '{against}'"
    lines += ["", "Validation UA of the best epoch (the one each fold keeps and tests); a mean only over "
              f"complete lines; 'change' is against {versus}. Settings, in order:"]
    lines += [f"- {label}: `{_setup(folder)}`" for label, folder, _ in read]
    if last:
        lines += ["", *_paired_table(settings, folds, against, last)]
    return "\n".join(lines) + "\n"


def _paired_table(settings: list[tuple[str, Path]], folds: list[str], against: str | None, last: int) -> list[str]:
    """Markdown lines: per setting, over the folds every line finished, the mean of the best
    epochs and of the last `last` epochs, each against the reference line (`against`, else the
    line above): the mean change, the folds that rose, and the paired Wilcoxon p."""
    from .stats import paired_wilcoxon

    runs = [(label, finished_runs(folder, last)) for label, folder in settings]
    common = [f for f in folds if all(f in r and r[f]["last"] is not None for _, r in runs)]
    head = f"| setting | best epoch | change | higher | p | last {last} epochs | change | higher | p |"
    lines = [head, "|---|" + "---|" * 8]
    reference = next((r for label, r in runs if label == against), None)
    previous = None
    for label, r in runs:
        base = previous if against is None else None if label == against else reference
        cells = []
        for metric in ("best", "last"):
            mine = [r[f] for f in common]
            cells.append(f"{100 * statistics.fmean(x[metric] for x in mine):.1f}" if common else "")
            if base is None or not common:
                cells += ["", "", ""]
                continue
            theirs = [base[f] for f in common]
            test = paired_wilcoxon(mine, theirs, metric)
            higher = sum(a[metric] > b[metric] for a, b in zip(mine, theirs))
            cells += [f"{100 * test['mean_difference']:+.1f}", f"{higher} of {len(common)}",
                      "" if test["p"] is None else f"{test['p']:.3g}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        previous = r
    versus = "the line above" if against is None else f"the line '{against}'"
    pairs = "runs (fold and seed)" if any(seed_of(f) for f in common) else "folds"
    return lines + ["", f"Over the {len(common)} {pairs} every line finished: the mean validation UA of the best "
                    f"epoch and of the last {last} epochs; 'change', 'higher' (folds that rose) and p (two-sided "
                    f"Wilcoxon signed-rank test, scipy.stats.wilcoxon, paired by fold and seed) against {versus}."]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ser_fcn ablation",
                                description="validation UA of training settings, one line per cv folder")
    p.add_argument("settings", nargs="+", metavar="LABEL=DIR", help="a label and the cv folder of that setting")
    p.add_argument("--out", help="markdown file to write (default: print only)")
    p.add_argument("--against", metavar="LABEL", help="the 'change' column against this line (e.g. the recipe, "
                   "with lines of the recipe less one setting each) instead of the line above")
    p.add_argument("--folds", nargs="+", metavar="FOLD", help="only these folds' columns (e.g. fold1 fold2), "
                   "the others of each cv folder left out")
    p.add_argument("--last", type=int, metavar="N", help="add a table of each fold's mean validation UA over "
                   "its last N epochs beside the best epoch's, with paired Wilcoxon tests against the reference line")
    a = p.parse_args(argv)
    if a.last is not None and a.last < 1:
        p.error("--last: give a number of epochs >= 1")
    settings = []
    for item in a.settings:
        label, sep, folder = item.rpartition("=")
        if not sep or not label:
            p.error(f"{item!r}: give LABEL=DIR")
        settings.append((label, Path(folder)))
    md = render(settings, a.against, a.folds, a.last)  # a missing folder: a UserError, one `error:` line from cli.main
    print(md)
    if a.out:
        atomic.write_text(a.out, md)
        print(f"wrote {a.out}")
