"""Published figures quoted beside ours, not run here: under the common IEMOCAP protocol, and
under EmoDB's speaker-independent protocol (Chen et al. 2018, `EMODB_PUBLISHED`).

Only figures read in a source are listed, each with where it was read. EmoBox's IEMOCAP
folds are the common protocol (5531 utterances: neu, hap + exc, sad, ang; one session held
out per fold; its data/iemocap/label_map.json merges exc into Happy). SUPERB's emotion task
and emotion2vec use the same protocol, but no five-fold figure of theirs could be read in a
stored source when these rows were written, so they are left out rather than quoted from memory.
"""

from __future__ import annotations

from dataclasses import dataclass

QUOTED = "quoted, not run here"
EMOBOX_SOURCE = ("EmoBox (Ma et al., Proc. Interspeech 2024, arXiv:2406.07162), Table 4 'Intra-corpus SER "
                 "results', IEMOCAP (en) columns, as shown in the EmoBox README (docs/intra-corpus.jpg, "
                 "github.com/emo-box/EmoBox); pre-trained speech models, training setup in that paper")


@dataclass(frozen=True)
class Reference:
    system: str
    ua: float  # %
    wa: float  # %
    f1: float  # macro F1, %
    source: str = EMOBOX_SOURCE


# (UA, WA, F1) in the order of EmoBox's table.
COMMON_PROTOCOL = [
    Reference("wav2vec 2.0 base", 58.27, 57.73, 57.83),
    Reference("HuBERT base", 63.87, 63.10, 63.45),
    Reference("HuBERT large", 67.42, 66.69, 67.24),
    Reference("WavLM base", 62.92, 63.94, 63.40),
    Reference("WavLM large", 69.47, 69.07, 69.29),
    Reference("data2vec base", 54.19, 53.20, 53.76),
    Reference("data2vec large", 52.56, 51.11, 51.71),
    Reference("data2vec 2.0 base", 54.40, 53.19, 53.71),
    Reference("data2vec 2.0 large", 57.30, 56.23, 56.70),
    Reference("Whisper large v3", 73.54, 72.86, 73.11),
]


def render_references(refs: list[Reference]) -> list[str]:
    """Markdown lines: a table of the published rows, each with its source."""
    lines = ["", f"## Published figures under the common protocol ({QUOTED})", "",
             "| System | WA | UA | Macro F1 | Source |", "|---|---|---|---|---|"]
    for r in refs:
        source = "[1]" if r.source == EMOBOX_SOURCE else r.source
        lines.append(f"| {r.system} ({QUOTED}) | {r.wa:.2f} | {r.ua:.2f} | {r.f1:.2f} | {source} |")
    if any(r.source == EMOBOX_SOURCE for r in refs):
        lines.append(f"\n[1] {EMOBOX_SOURCE}.")
    return lines


# --- EmoDB: figures published under its speaker-independent protocol -------------------------

SAME_PROTOCOL = "published, same protocol, not run here"
CHEN_2018 = ('Chen et al., "3-D Convolutional Recurrent Neural Networks with Attention Model for Speech Emotion '
             'Recognition", IEEE Signal Processing Letters 2018, Table II')


@dataclass(frozen=True)
class PublishedUA:
    """A published UA (%) as mean ± standard deviation over folds; no WA quoted."""

    system: str
    ua: float
    ua_std: float
    source: str = CHEN_2018


# EmoDB, 7 classes, leave one speaker out with a validation speaker (the protocol of our EmoDB rows).
EMODB_PUBLISHED = [
    PublishedUA("3-D ACRNN (log-mel with deltas, CNN + LSTM + attention)", 82.82, 4.99),
    PublishedUA("2-D ACRNN (log-mel, CNN + LSTM + attention)", 79.38, 7.78),
    PublishedUA("DNN-ELM", 71.56, 8.43),
]
