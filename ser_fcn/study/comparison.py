"""What the tables add to each row's mean: its 95 % interval, a paired test against a reference
row, per-class recall and the pooled confusion matrix (markdown pieces for tables.py).

Rows are given as (system name, aggregate) pairs; an aggregate is a cv `aggregate.json`.
"""

from __future__ import annotations

from .stats import CONFIDENCE, SIGNIFICANCE, TEST_NAME, paired_wilcoxon, smallest_p

FOLDS_ONLY_PAIRS = 5  # the paper's five folds, one seed: the case the footnote warns about


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def mean_ci_cell(metric: dict) -> str:
    """`61.2 [55.0, 67.4]`: mean and 95 % interval in %; the mean alone when there is no interval."""
    if metric.get("mean") is None:
        return "no finished run"
    ci = metric.get("ci")
    return pct(metric["mean"]) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else " (one run: no interval)")


def compare_rows(rows: list[tuple[str, dict]], reference: tuple[str, dict] | None) -> dict[str, dict]:
    """The paired UA test of each row (by system name) against `reference`; the reference itself
    and rows without runs are left out."""
    if reference is None:
        return {}
    ref_name, ref_agg = reference
    return {name: paired_wilcoxon(agg["folds"], ref_agg["folds"], "ua")
            for name, agg in rows if name != ref_name and agg.get("n_runs")}


def significance_mark(test: dict) -> str:
    return " \\*" if test.get("p") is not None and test["p"] < SIGNIFICANCE else ""


def footnote(label: str, reference: str, test: dict) -> str:
    """`[^label]: vs <reference>: …, p = …` for one compared row."""
    if test["p"] is None:
        text = f"not tested against {reference}: {test['note']}"
    else:
        verdict = "significant" if test["p"] < SIGNIFICANCE else "not significant"
        text = (f"vs {reference}: UA {100 * test['mean_difference']:+.1f} points (mean paired difference) over "
                f"{test['n_pairs']} (fold, seed) pairs, p = {test['p']:.4g} ({verdict} at {SIGNIFICANCE})"
                + (f"; {test['note']}" if test["note"] else ""))
    if test["unpaired"]:
        text += f"; left out, without a partner run: {', '.join(test['unpaired'])}"
    return f"[^{label}]: {text}."


def method_lines(reference: str | None, why: str, n_pairs: int) -> list[str]:
    """The notes that define the interval and the paired test under a table."""
    lines = [f"- Intervals: each 'here' cell is the mean over the row's runs (folds x seeds) and its "
             f"{100 * CONFIDENCE:.0f} % Student t confidence interval (scipy.stats.t.interval, n - 1 degrees of "
             "freedom; the runs are taken as independent, though seeds of one fold share its test speakers)."]
    if reference is None:
        return lines + ["- Paired test: none (no row to compare with has runs)."]
    caveat = (f"With {FOLDS_ONLY_PAIRS} pairs (IEMOCAP's 5 folds, one seed) the smallest two-sided "
              f"p this test can give is {smallest_p(FOLDS_ONLY_PAIRS):.4g}, so there no difference can be significant "
              f"without seeds (`--seeds`, `SEEDS=3 make …`: 15 pairs, smallest p {smallest_p(15):.1g}); "
              f"here the rows have up to {n_pairs} pairs (smallest p {smallest_p(n_pairs):.2g}).")
    lines.append(
        f"- Paired test: {TEST_NAME}, on UA, each row against **{reference}** ({why}); footnotes give p, "
        f"`*` marks p < {SIGNIFICANCE}. " + caveat)
    return lines


def recall_table(rows: list[tuple[str, dict]]) -> list[str]:
    """Per-class recall (%) of each row, averaged over its runs (a class over the runs whose
    test labels have it)."""
    classes = next((agg["classes"] for _, agg in rows if agg.get("classes")), None)
    if not classes:
        return []
    lines = ["", "Per-class recall here (%, mean over each row's runs):", "",
             "| System | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for name, agg in rows:
        recalls = agg.get("recall") or [None] * len(classes)
        lines.append(f"| {name} | " + " | ".join(pct(r) for r in recalls) + " |")
    return lines


def confusion_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """Each row's pooled confusion matrix (summed over runs) on one line: `ref: counts predicted as …`."""
    classes = next((agg["classes"] for _, agg in rows if agg.get("classes")), None)
    if not classes:
        return []
    lines = ["", f"Pooled confusion matrices (summed over runs; each reference class, then its counts "
                 f"predicted as {' / '.join(classes)}):", ""]
    for name, agg in rows:
        cm = agg.get("confusion_matrix") or []
        cells = " · ".join(f"{cls} {' '.join(str(n) for n in row)}" for cls, row in zip(classes, cm))
        lines.append(f"- {name}: `{cells}`")
    return lines
