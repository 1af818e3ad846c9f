"""A cross-validation's aggregate: every run's results.json read back and summarised (mean, 95 %
interval, per-class recall, pooled confusion matrix), and the line `cv` prints of it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import confusion_matrix

from ..training.metrics import confusion_scores
from ..utils.run_folder import CONFIG, RESULTS
from .cv_plan import FOLD_META, fold_of, seed_of
from .stats import CONFIDENCE, class_recalls, mean_ci, mean_class_recalls
from .wandb_report import logger_settings


def resolved_settings(run_dir: Path) -> dict:
    """The parts of a fold's resolved config (its config.yaml) that a table reports."""
    path = run_dir / CONFIG
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text()) or {}
    trainer, data, model = cfg.get("trainer") or {}, cfg.get("data") or {}, cfg.get("model") or {}
    net, opt = model.get("net") or {}, model.get("optimizer") or {}
    keep_trainer = ("max_epochs", "max_time", "limit_train_batches", "limit_val_batches", "precision", "accelerator")
    keep_data = ("corpus", "root", "manifest", "emobox", "audio_root", "classes", "merge_exc", "include_scripted", "segmented",
                 "max_frames_per_batch", "demo_utterances_per_speaker")
    return {
        "net": {"class_path": net.get("class_path"), **(net.get("init_args") or {})},
        "optimizer": {"class_path": opt.get("class_path"), "lr": (opt.get("init_args") or {}).get("lr")},
        "trainer": {k: trainer.get(k) for k in keep_trainer},
        "data": {k: data.get(k) for k in keep_data},
        "wandb": logger_settings(trainer.get("logger")),  # project, offline; None: the fits log no W&B run
    }


def _read_run(out: Path, run_name: str, classes: list[str] | None, posteriors: bool = False) -> dict | None:
    """One run's entry of the aggregate (None when it has no results.json); its classes must
    be `classes` when given. `posteriors`: keep the run's test posteriors (an ensemble's input)."""
    path = out / run_name / RESULTS
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    if classes is not None and r["classes"] != classes:
        raise ValueError(f"{path}: classes {r['classes']} differ from {classes} of the other runs")
    if posteriors and not r.get("posteriors"):
        raise ValueError(f"{path} has no test posteriors (results.json written before ser_fcn recorded them), which "
                         "an ensemble averages: test the run's checkpoint again into a new folder (`python -m ser_fcn "
                         f"test --config {out / run_name / CONFIG} --ckpt_path <its checkpoint> --run_dir <new folder>`) "
                         "and put that results.json in place of this one, or train the run again")
    meta_path = out / run_name / FOLD_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {
        "name": run_name, "fold": r.get("fold"), "swap_speakers": r.get("swap_speakers"), "seed": seed_of(run_name),
        "test_speaker": r.get("test_speaker"), "wa": r["wa"], "ua": r["ua"], **_scored(r["confusion_matrix"], r["classes"]),
        "n_utterances": r.get("n_utterances"), "corpus": r.get("corpus"), "merge_exc": r.get("merge_exc"),
        "wall_s": meta.get("wall_s"), "device": meta.get("device"), "classes": r["classes"],
        **({"posteriors": r["posteriors"], "path": str(path)} if posteriors else {}),
    }


def _scored(cm: list[list[int]], classes: list[str]) -> dict:
    return {"recall": class_recalls(cm), "confusion_matrix": cm,
            "predicted": [c for j, c in enumerate(classes) if any(row[j] for row in cm)]}


def ensemble_seeds(runs: list[dict]) -> list[dict]:
    """One entry per fold: the test posteriors of its seeds' runs averaged per utterance (an
    ensemble of the seeds' models), then scored. Every run of a fold must have scored the same
    utterances with the same labels; wall time is the seeds' total."""
    by_fold: dict[str, list[dict]] = {}
    for r in runs:
        by_fold.setdefault(fold_of(r["name"]), []).append(r)
    merged = []
    for fold, members in by_fold.items():
        first = members[0]["posteriors"]
        order = {u: i for i, u in enumerate(first["utterance_ids"])}
        probs = np.zeros((len(order), len(members[0]["classes"])))
        for m in members:
            post = m["posteriors"]
            if sorted(post["utterance_ids"]) != sorted(order) or any(
                    first["labels"][order[u]] != y for u, y in zip(post["utterance_ids"], post["labels"])):
                raise ValueError(f"{m['path']}: its test utterances or labels differ from {members[0]['path']}'s; "
                                 "an ensemble averages the same utterances")
            probs[[order[u] for u in post["utterance_ids"]]] += np.asarray(post["probs"])
        classes = members[0]["classes"]
        cm = confusion_matrix(first["labels"], probs.argmax(1), labels=list(range(len(classes)))).tolist()
        wa, ua = confusion_scores(cm)
        merged.append({**{k: v for k, v in members[0].items() if k not in ("posteriors", "path")},
                       "name": fold, "seed": None,
                       "seeds": sorted(m["seed"] for m in members), "wa": wa, "ua": ua, **_scored(cm, classes),
                       "wall_s": sum(m["wall_s"] or 0 for m in members)})
    return merged


def _summed(confusions: Sequence[Sequence[Sequence[int]]]) -> list[list[int]] | None:
    if not confusions:
        return None
    size = len(confusions[0])
    return [[sum(cm[i][j] for cm in confusions) for j in range(size)] for i in range(size)]


def aggregate(out: str | Path, expected: Sequence[str] | None = None, name: str | None = None,
              ensemble: bool = False) -> dict:
    """WA and UA over the (fold, seed) runs of `out` that have results.json: mean, sample std
    and 95 % confidence interval (`stats.mean_ci`), per-class recall averaged over runs, the
    summed confusion matrix, and every run's own result under "folds".

    `expected`: the run names of the full plan; those without results are listed as missing.
    `ensemble`: each fold's seeds make one model, their test posteriors averaged
    (`ensemble_seeds`); the figures are then over folds, one entry per fold under "folds".
    """
    out = Path(out)
    names = list(expected) if expected else sorted(p.parent.name for p in out.glob(f"*/{RESULTS}"))
    runs: list[dict] = []
    for run_name in names:
        entry = _read_run(out, run_name, runs[0]["classes"] if runs else None, posteriors=ensemble)
        if entry is not None:
            runs.append(entry)
    missing = [n for n in names if n not in {r["name"] for r in runs}]
    seeds = sorted({r["seed"] for r in runs})
    if ensemble:
        runs = ensemble_seeds(runs)
    classes = runs[0]["classes"] if runs else None
    for entry in runs:
        del entry["classes"]
    cm = _summed([r["confusion_matrix"] for r in runs])
    pooled = confusion_scores(cm) if cm else (None, None)
    return {
        "experiment": name or out.name,
        "n_runs": len(runs),
        "n_folds": len({(r["fold"], bool(r["swap_speakers"])) for r in runs}),
        "seeds": seeds,
        "ensemble": ensemble,  # True: one run per fold, its seeds' posteriors averaged
        "complete": bool(runs) and not missing,
        "missing_folds": missing,  # run names (fold<k>[-swap][-seed<s>]) of the plan without results
        "wa": mean_ci([r["wa"] for r in runs]),
        "ua": mean_ci([r["ua"] for r in runs]),
        "std": "sample standard deviation over the (fold, seed) runs (n - 1)",
        "ci": f"{100 * CONFIDENCE:.0f} % Student t interval of the mean over the (fold, seed) runs "
              "(scipy.stats.t.interval, n - 1 degrees of freedom, runs taken as independent)",
        "classes": classes,
        "recall": mean_class_recalls([r["confusion_matrix"] for r in runs]),  # per class, mean over runs
        "confusion_matrix": cm,  # summed over runs: rows true, columns predicted
        "pooled": {"wa": pooled[0], "ua": pooled[1]},  # of the summed confusion matrix
        "corpus": sorted({str(r["corpus"]) for r in runs}),
        "merge_exc": sorted({bool(r["merge_exc"]) for r in runs}),
        "devices": sorted({r["device"] for r in runs if r["device"]}),
        "wall_s": round(sum(r["wall_s"] or 0 for r in runs), 1),
        "resolved_config": next((cfg for r in runs if (cfg := resolved_settings(out / r["name"]))), {}),  # first run that saved one
        "folds": runs,  # one entry per (fold, seed) run; with `ensemble`, per fold
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _pct_ci(metric: dict) -> str:
    ci = metric.get("ci")
    return _pct(metric["mean"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def summary_line(agg: dict) -> str:
    runs = f"{agg['n_runs']} folds, each the ensemble of seeds {agg['seeds']}" if agg.get("ensemble") else f"{agg['n_runs']} runs"
    done = runs + ("" if agg["complete"] else f", MISSING {', '.join(agg['missing_folds'])}")
    return (f"cv {agg['experiment']}: WA {_pct_ci(agg['wa'])}  UA {_pct_ci(agg['ua'])}"
            f"  ({done}; mean [{100 * CONFIDENCE:.0f} % CI] in %)")

