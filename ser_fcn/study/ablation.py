"""A recipe ablation: the validation UA of training settings, one line per setting.

    python -m ser_fcn ablation --out results/emodb_ablation.md \\
        "paper defaults=runs/ablation/base" "+ lr 5e-4, cosine, class weights=runs/ablation/no_augment" \\
        "+ SpecAugment=runs/ablation/recipe"

Each `LABEL=DIR` is a `cv` output folder: one setting trained on the same folds as the others.
A fold's figure is the validation UA of its best epoch (the epoch `fit` keeps and tests), read
from the per-epoch history in its results.json. Settings are chosen on these figures alone:
test figures are never read here. Each line also gives the setting's configs and overrides
(cv.json), so it can be run again.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ..utils import atomic
from ..utils.errors import CorpusNotFoundError
from .crossval import RESULTS, SETUP

VAL_UA = "val/ua"


def best_validation(results: dict) -> tuple[float, int] | None:
    """(best validation UA, its epoch) of one fold's results.json, or None without a history."""
    history = [h for h in results.get("history") or [] if VAL_UA in h]
    if not history:
        return None
    best = max(history, key=lambda h: (h[VAL_UA], -h["epoch"]))  # the first epoch of the best UA
    return best[VAL_UA], best["epoch"]


def read_setting(folder: Path) -> dict[str, tuple[float, int]]:
    """fold name -> (best validation UA, epoch) of every finished fold in a cv folder."""
    if not folder.is_dir():
        raise CorpusNotFoundError(f"{folder}: no such cv folder (give LABEL=DIR with the --out of a `cv` run)")
    out = {}
    for path in sorted(folder.glob(f"fold*/{RESULTS}")):
        best = best_validation(json.loads(path.read_text()))
        if best is not None:
            out[path.parent.name] = best
    return out


def _setup(folder: Path) -> str:
    path = folder / SETUP
    if not path.is_file():
        return ""
    setup = json.loads(path.read_text())
    words = [f"--config {c}" for c in setup.get("configs", [])] + list(setup.get("overrides", []))
    return " ".join(words)


def render(settings: list[tuple[str, Path]]) -> str:
    """Markdown: one line per setting, its per-fold validation UA (%) and their mean."""
    read = [(label, folder, read_setting(folder)) for label, folder in settings]
    folds = sorted({f for _, _, r in read for f in r}, key=lambda f: (len(f), f))
    lines = [
        "| setting | " + " | ".join(f"{f} val UA" for f in folds) + " | mean | change |",
        "|---|" + "---|" * (len(folds) + 2),
    ]
    previous = None
    for label, _, r in read:
        cells = [f"{100 * r[f][0]:.1f} (epoch {r[f][1]})" if f in r else "not run" for f in folds]
        complete = all(f in r for f in folds)
        mean = statistics.fmean(r[f][0] for f in folds) if complete and folds else None
        change = f"{100 * (mean - previous):+.1f}" if mean is not None and previous is not None else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'' if mean is None else f'{100 * mean:.1f}'} | {change} |")
        previous = mean if mean is not None else previous
    lines += ["", "Validation UA of the best epoch (the one each fold keeps and tests); a mean only over "
              "complete lines; 'change' is against the line above. Settings, in order:"]
    lines += [f"- {label}: `{_setup(folder)}`" for label, folder, _ in read]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ser_fcn ablation",
                                description="validation UA of training settings, one line per cv folder")
    p.add_argument("settings", nargs="+", metavar="LABEL=DIR", help="a label and the cv folder of that setting")
    p.add_argument("--out", help="markdown file to write (default: print only)")
    a = p.parse_args(argv)
    settings = []
    for item in a.settings:
        label, sep, folder = item.rpartition("=")
        if not sep or not label:
            p.error(f"{item!r}: give LABEL=DIR")
        settings.append((label, Path(folder)))
    md = render(settings)  # a missing folder: a UserError, one `error:` line from cli.main
    print(md)
    if a.out:
        atomic.write_text(a.out, md)
        print(f"wrote {a.out}")
