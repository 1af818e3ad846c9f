"""Table II's comparison on a corpus other than IEMOCAP (`table2 --corpus emodb|ravdess`): its
rows (every one from random init), the corpus's title, protocol and speaker pairing, the figures
published under the same protocol, and whether the order of our rows agrees with the paper's
claims. tables.py runs and renders it."""

from __future__ import annotations

from dataclasses import dataclass

from ..corpora import emodb, ravdess
from .references import EMODB_PUBLISHED, SAME_PROTOCOL, PublishedUA
from .rows import Outcome, PairedTests, Row
from .stats import SIGNIFICANCE

REAL_SPEECH = "real_speech"  # experiments/profiles/real_speech.yaml, the recipe: the corpus tables' default profile

# Table II's comparison on another corpus: every row from random init (no ImageNet download needed)
SPEAKER_ROWS = [
    Row("FCN + attention, random init", "fcn_attn_random", None, None),
    Row("FCN + mean pooling (λ = 0), random init", "fcn_meanpool", None, None),
    Row("AlexNet on 3 s segments, random init", "alexnet_random", None, None),
]


@dataclass(frozen=True)
class CorpusTable:
    """The comparison on a corpus other than IEMOCAP: its title, its speaker pairing (as the
    notes state it) and the figures published under its protocol."""

    title: str
    protocol: str
    pairing: str
    published: tuple[PublishedUA, ...] = ()


CORPUS_TABLES = {
    "emodb": CorpusTable(
        "EmoDB: FCN + attention, mean pooling and the segmented AlexNet, speaker-independent (10 folds)",
        "EmoDB's speaker-independent protocol: leave one speaker out with a validation speaker (10 folds; "
        "all 535 utterances, 7 classes, as Chen et al. 2018)", emodb.pairing_text(), tuple(EMODB_PUBLISHED)),
    "ravdess": CorpusTable(
        "RAVDESS (audio-only speech): FCN + attention, mean pooling and the segmented AlexNet, speaker-independent "
        "(24 folds)", "leave one actor out with a validation actor (24 folds; audio-only speech, 8 classes)",
        ravdess.pairing_text()),
}
# the paper's claims that the order of the corpus tables' rows tests: (better, worse, claim)
CLAIMS = [("fcn_attn_random", "fcn_meanpool", "attention pooling beats mean pooling (its section II-B)"),
          ("fcn_attn_random", "alexnet_random", "whole utterances (the FCN) beat 3 s segments (AlexNet; its Table II)")]


def published_outcome(p: PublishedUA) -> Outcome:
    """A published row of a corpus table: its UA as mean ± std, marked as not run here."""
    return Outcome(Row(f"{p.system}, Chen et al. 2018", None, None, p.ua), note=SAME_PROTOCOL,
                   extra={"ua_published": f"{p.ua:.2f} ± {p.ua_std:.2f}"})


def ordering_lines(outcomes: list[Outcome], paired: PairedTests) -> list[str]:
    """Where the order of our rows agrees with the paper's claims (CLAIMS), with the paired tests."""
    ran = {o.row.experiment: o for o in outcomes if o.agg and o.agg.get("n_runs")}
    lines = []
    for better, worse, claim in CLAIMS:
        if better not in ran or worse not in ran:
            missing = " and ".join(e for e in (better, worse) if e not in ran)
            lines.append(f"- The paper's claim that {claim}: not tested here ({missing} has no finished run).")
            continue
        b, w = 100 * ran[better].agg["ua"]["mean"], 100 * ran[worse].agg["ua"]["mean"]
        verdict = "agrees" if b > w else "disagrees" if b < w else "neither agrees nor disagrees (a tie)"
        test = paired.tests.get(ran[worse].row.system) if paired.reference_system == ran[better].row.system else None
        if test and test.get("p") is not None:
            sig = "significant" if test["p"] < SIGNIFICANCE else "not significant"
            tested = f"; paired test over {test['n_pairs']} runs p = {test['p']:.3g}, {sig} at {SIGNIFICANCE}"
        else:
            tested = "; no paired test"
        lines.append(f"- The paper's claim that {claim}: the order here {verdict}: mean UA {b:.1f} against "
                     f"{w:.1f} ({b - w:+.1f} points{tested}).")
    return lines
