"""`python -m ser_fcn evaluate --ckpt C (--manifest M.csv | --root IEMOCAP_DIR) [--label_map exc=hap,...] [--out report.json]`

Scores a checkpoint on every labelled utterance given (no folds): WA, UA, macro F1, recall
per class and the confusion matrix, overall, per speaker and per session. Labels outside the
model's classes (after --label_map) are listed and counted, never scored or guessed;
unreadable audio files are listed and counted too.

Utterance posteriors come from the same path as `python -m ser_fcn test`: the run's feature
cache and settings (float16 entries unless the run chose float32), batches through the model,
segments averaged per utterance for segmented baselines (`average_posteriors`). UA is the mean
recall over the classes present in the reference labels (sklearn's balanced accuracy).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from ..data.datamodule import SpectrogramDataset
from ..corpora.iemocap import CODES, read_iemocap
from ..corpora.manifest import ManifestError, Utterance, read_manifest
from .checkpoint import datamodule_from_hparams, load_checkpoint
from ..training.metrics import confusion_scores
from ..utils import atomic
from ..training.forward import posteriors


def parse_label_map(text: str | None) -> dict[str, str]:
    """'exc=hap,fru=ang' -> {'exc': 'hap', 'fru': 'ang'}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        src, eq, dst = part.partition("=")
        if not eq or not src.strip() or not dst.strip():
            raise ValueError(f"--label_map: {part!r} is not FROM=TO (e.g. exc=hap,fru=ang)")
        mapping[src.strip()] = dst.strip()
    return mapping


def scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """WA, UA (mean recall over the classes present in y_true), macro F1 (same classes),
    recall per present class, confusion matrix (rows: reference, columns: predicted)."""
    present = sorted(set(y_true.tolist()))
    recalls = recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    return {
        "n": int(len(y_true)),
        "wa": float(accuracy_score(y_true, y_pred)),
        "ua": confusion_scores(cm)[1],
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "recall_per_class": {classes[c]: float(r) for c, r in zip(present, recalls)},
        "confusion_matrix": cm.tolist(),
    }


def load_rows(manifest: str | None, root: str | None, include_scripted: bool = False) -> list[Utterance]:
    """Every labelled utterance of a manifest, or of an IEMOCAP tree (all codes)."""
    if bool(manifest) == bool(root):
        raise ValueError("give --manifest M.csv or --root IEMOCAP_DIR (one of them)")
    if manifest:
        return read_manifest(manifest)
    rows, _ = read_iemocap(root, CODES, include_scripted=include_scripted)
    return rows


def evaluate(ckpt: str | Path, rows: list[Utterance], label_map: dict[str, str] | None = None,
             device: str = "cpu", progress: bool = True) -> dict:
    module, _, dm_hp = load_checkpoint(ckpt, device)
    classes = list(module.class_names)
    rows = [replace(r, label=(label_map or {}).get(r.label, r.label)) for r in rows]
    outside = Counter(r.label for r in rows if r.label not in classes)
    rows = [r for r in rows if r.label in classes]
    if not rows:
        raise ValueError(f"no utterance has a label among the model's classes {classes} (labels seen: {dict(outside)})")
    dm = datamodule_from_hparams(dm_hp)  # the run's feature cache and settings
    frames, bad = dm.cache.ensure([r.path for r in rows], progress=progress, skip_bad=True)
    keep = [i for i, n in enumerate(frames) if n is not None]
    seg = int(dm_hp.get("segment_frames", 300)) if dm_hp.get("segmented") else None
    # data.speaker_norm: each evaluated speaker standardised with its own statistics, as in training
    stats = dm.speaker_stats_of([rows[i] for i in keep])
    ds = SpectrogramDataset(dm.cache, rows, keep, [frames[i] for i in keep], classes, seg, stats)
    post = posteriors(module, dm.loader(ds))
    scored = [rows[keep[u]] for u in sorted(post)]
    y_true = np.array([post[u][1] for u in sorted(post)])
    y_pred = np.array([int(np.argmax(post[u][0])) for u in sorted(post)])
    report = {"checkpoint": str(ckpt), "classes": classes, "label_map": label_map or {},
              **scores(y_true, y_pred, classes),
              "balanced_accuracy_check": float(balanced_accuracy_score(y_true, y_pred)),
              "outside_classes": dict(outside.most_common()), "n_outside_classes": sum(outside.values()),
              "unreadable": [str(e) for e in bad], "n_unreadable": len(bad)}
    for key, name in (("speaker", "per_speaker"), ("session", "per_session")):
        groups = defaultdict(list)
        for i, r in enumerate(scored):
            groups[str(getattr(r, key))].append(i)
        report[name] = {g: scores(y_true[ix], y_pred[ix], classes) for g, ix in sorted(groups.items())}
    return report


def format_report(rep: dict) -> str:
    classes = rep["classes"]
    lines = [f"{rep['n']} utterances scored: WA {100 * rep['wa']:.1f}%  UA {100 * rep['ua']:.1f}%  "
             f"macro F1 {100 * rep['macro_f1']:.1f}%",
             "recall: " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in rep["recall_per_class"].items()),
             "confusion (rows: reference, columns: predicted)", "      " + "".join(f"{x:>7}" for x in classes)]
    lines += [f"{classes[i]:<6}" + "".join(f"{v:>7}" for v in row) for i, row in enumerate(rep["confusion_matrix"])]
    for name in ("per_speaker", "per_session"):
        lines.append(f"{name.replace('_', ' ')}:")
        lines += [f"  {g:<8} n={s['n']:<5} WA {100 * s['wa']:5.1f}%  UA {100 * s['ua']:5.1f}%  F1 {100 * s['macro_f1']:5.1f}%"
                  for g, s in rep[name].items()]
    if rep["n_outside_classes"]:
        lines.append(f"not scored, label outside {classes}: {rep['n_outside_classes']} "
                     f"({', '.join(f'{k} {n}' for k, n in rep['outside_classes'].items())}); map them with --label_map")
    if rep["n_unreadable"]:
        lines.append(f"not scored, unreadable audio: {rep['n_unreadable']}")
        lines += [f"  {e}" for e in rep["unreadable"][:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_fcn evaluate", description="score a checkpoint on a labelled corpus")
    parser.add_argument("--ckpt", required=True, help="a checkpoint of `python -m ser_fcn fit`")
    parser.add_argument("--manifest", help="a CSV manifest (columns: see docs/corpora.md, 'Your own corpus')")
    parser.add_argument("--root", help="an IEMOCAP_full_release folder (every labelled utterance)")
    parser.add_argument("--include_scripted", action="store_true", help="with --root: scripted dialogs too")
    parser.add_argument("--label_map", help="relabel before scoring, e.g. exc=hap,fru=ang")
    parser.add_argument("--out", help="write the report here as JSON")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        rep = evaluate(args.ckpt, load_rows(args.manifest, args.root, args.include_scripted), parse_label_map(args.label_map), args.device)
    except (FileNotFoundError, ValueError, ManifestError) as err:
        sys.exit(f"error: {err}")
    print(format_report(rep))
    if args.out:
        atomic.write_json(args.out, rep, indent=1)
        print(f"report: {args.out}")
