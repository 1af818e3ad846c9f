"""Statistics of cross-validated runs: confidence intervals, per-class recall, paired tests.

A "run" is one (fold, seed) of an experiment. Every function here takes plain lists of
numbers or run records (the `folds` entries of a cv aggregate) so that it can be checked
against scipy on the same values.

- Confidence interval: Student t over the runs' values, `scipy.stats.t.interval(level,
  n - 1, loc=mean, scale=sem)` with sem = sample std / sqrt(n). It treats the folds x seeds
  values as independent draws; runs of the same fold share their test speakers, so with
  seeds the interval is, if anything, too narrow.
- Paired test: two-sided Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, its default
  zero handling) on the UA of two experiments, paired by (fold, speaker swap, seed). With
  n pairs and no ties its smallest two-sided p is 2 / 2**n: 0.0625 for 5 pairs, so the five
  folds alone can never show p < 0.05; seeds (`--seeds`) add pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95  # the level of every interval in the aggregate and the tables
SIGNIFICANCE = 0.05  # a paired difference with p below this is marked in the tables
TEST_NAME = "two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon), paired by (fold, seed)"


def mean_ci(values: Sequence[float], level: float = CONFIDENCE) -> dict:
    """{"mean", "std", "ci": [low, high], "n"} of `values`; std (n - 1) and ci are None below
    two values. A zero spread gives the zero-width interval [mean, mean]."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci": None, "n": 0}
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "ci": None, "n": 1}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    if std == 0:
        return {"mean": mean, "std": 0.0, "ci": [mean, mean], "n": n}
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci": [float(low), float(high)], "n": n}


def class_recalls(confusion: Sequence[Sequence[int]]) -> list[float | None]:
    """Recall of each class of a confusion matrix (rows: reference); None for a class that no
    reference utterance has (left out of UA, see training.metrics.confusion_scores)."""
    return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(confusion)]


def mean_class_recalls(confusions: Sequence[Sequence[Sequence[int]]]) -> list[float | None]:
    """Per-class recall averaged over runs, each class over the runs whose test labels have it."""
    per_run = [class_recalls(cm) for cm in confusions]
    if not per_run:
        return []
    columns = zip(*per_run)
    return [math.fsum(present) / len(present) if (present := [r for r in column if r is not None]) else None
            for column in columns]


def run_key(run: dict) -> tuple:
    """What pairs two experiments' runs: the fold, the speaker swap and the seed."""
    return (run.get("fold"), bool(run.get("swap_speakers")), run.get("seed") or 0)


def describe_key(key: tuple) -> str:
    fold, swap, seed = key
    return f"fold{fold}" + ("-swap" if swap else "") + f" seed {seed}"


def paired_wilcoxon(runs: Sequence[dict], reference: Sequence[dict], metric: str = "ua") -> dict:
    """Wilcoxon test of `runs` against `reference` on `metric`, paired by `run_key`.

    Returns {"p", "n_pairs", "mean_difference" (runs - reference), "unpaired": [runs present
    on one side only], "note"}; p is None with fewer than one non-zero difference, and 1.0
    when every difference is zero. The order of either list does not matter.
    """
    from scipy import stats

    mine, theirs = _by_key(runs, metric), _by_key(reference, metric)
    keys = sorted(set(mine) & set(theirs), key=repr)
    unpaired = [describe_key(k) for k in sorted(set(mine) ^ set(theirs), key=repr)]
    differences = [mine[k] - theirs[k] for k in keys]
    out = {"p": None, "n_pairs": len(keys), "unpaired": unpaired,
           "mean_difference": math.fsum(differences) / len(keys) if keys else None, "note": None}
    if not keys:
        out["note"] = "no (fold, seed) pair in common"
    elif all(d == 0 for d in differences):
        out["p"], out["note"] = 1.0, "every paired difference is zero"
    else:
        out["p"] = float(stats.wilcoxon(differences, alternative="two-sided").pvalue)
    return out


def _by_key(runs: Sequence[dict], metric: str) -> dict:
    found: dict = {}
    for run in runs:
        key = run_key(run)
        if key in found:
            raise ValueError(f"two runs for {describe_key(key)}: cannot pair them")
        found[key] = run[metric]
    return found


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon test can give for `n_pairs` pairs (no ties)."""
    return min(1.0, 2.0 / 2 ** n_pairs) if n_pairs else 1.0
