"""The CSV manifest: the one schema every corpus is turned into.

Any labelled speech (IEMOCAP through its reader, or a user's RAVDESS, CREMA-D, EmoDB …)
trains the same way once it is a manifest with these columns.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..utils import atomic
from ..utils.errors import UserError

COLUMNS = ("utterance_id", "path", "label", "speaker", "session", "improvised", "duration_s")


class ManifestError(UserError, ValueError):
    """A manifest that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Utterance:
    utterance_id: str
    path: str
    label: str
    speaker: str
    session: int
    improvised: bool
    duration_s: float


LISTED = 20  # a summary lists at most this many files of each kind, then counts the rest


def _listed(items: list) -> list[str]:
    return [f"  {e}" for e in items[:LISTED]] + ([f"  … and {len(items) - LISTED} more"] if len(items) > LISTED else [])


@dataclass
class ReadSummary:
    """What a corpus reader saw and why anything was left out: shown to the user.

    Readers of label files (IEMOCAP, EmoBox) count `label_files` and `summary_lines`; readers
    that label by file name (EmoDB, RAVDESS) count `audio_files` and list the names they could
    not read (`unknown_names`) and what their protocol leaves out (`left_out`, by reason)."""

    label_files: int = 0
    summary_lines: int = 0
    codes: Counter = field(default_factory=Counter)
    excluded_scripted: int = 0
    excluded_class: Counter = field(default_factory=Counter)
    bad_audio: list = field(default_factory=list)  # corpora.audio.AudioError of each skipped file
    kept: int = 0
    audio_files: int = 0
    left_out: Counter = field(default_factory=Counter)
    unknown_names: list[str] = field(default_factory=list)  # "<path>: <why>"

    def report(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.codes.items()))
        if self.label_files or not self.audio_files:
            first = f"{self.label_files} label files, {self.summary_lines} labelled utterances ({codes})"
        else:
            first = f"{self.audio_files} audio files, {self.summary_lines} labelled by their names ({codes})"
        lines = [first, f"kept {self.kept}"]
        if self.excluded_scripted:
            lines.append(f"left out {self.excluded_scripted} scripted (data.include_scripted=true keeps them)")
        if self.left_out:
            lines.append("left out by the protocol: " + ", ".join(f"{k} {v}" for k, v in sorted(self.left_out.items())))
        if self.excluded_class:
            lines.append(
                "left out, label not in the class list: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.excluded_class.items()))
            )
        if self.unknown_names:
            lines.append(f"LEFT OUT {len(self.unknown_names)} file(s) whose names do not follow the corpus's naming:")
            lines += _listed(self.unknown_names)
        if self.bad_audio:
            lines.append(f"SKIPPED {len(self.bad_audio)} unusable wav file(s):")
            lines += _listed(self.bad_audio)
        return "\n".join(lines)


def write_manifest(rows: list[Utterance], path: str | Path) -> Path:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        record = asdict(row)
        record["improvised"] = int(row.improvised)
        record["duration_s"] = f"{row.duration_s:.4f}"
        writer.writerow(record)
    return atomic.write_text(path, text.getvalue())


def _parse_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in ("1", "true", "yes"):
        return True
    if word in ("0", "false", "no", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def read_manifest(path: str | Path, classes: list[str] | None = None) -> list[Utterance]:
    """Rows of the manifest at `path`, checked.

    Relative audio paths are taken relative to the manifest's folder. With `classes`,
    a label outside the list is an error that lists every such label and its count.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
        rows = []
        for line_no, raw in enumerate(reader, start=2):
            try:
                audio = Path(raw["path"])
                if not raw["path"]:
                    raise ValueError("empty path")
                rows.append(
                    Utterance(
                        utterance_id=raw["utterance_id"].strip(),
                        path=str(audio if audio.is_absolute() else (path.parent / audio)),
                        label=raw["label"].strip(),
                        speaker=raw["speaker"].strip(),
                        session=int(raw["session"]),
                        improvised=_parse_bool(raw["improvised"]),
                        duration_s=float(raw["duration_s"]),
                    )
                )
            except (TypeError, ValueError) as e:
                raise ManifestError(f"{path}:{line_no}: bad row ({e})") from None
            if not rows[-1].utterance_id or not rows[-1].speaker or not rows[-1].label:
                raise ManifestError(f"{path}:{line_no}: utterance_id, label and speaker must not be empty")
    if not rows:
        raise ManifestError(f"{path}: no utterances")
    dup = [u for u, n in Counter(r.utterance_id for r in rows).items() if n > 1]
    if dup:
        raise ManifestError(f"{path}: duplicate utterance_id(s): {', '.join(dup[:5])}")
    if classes is not None:
        outside = Counter(r.label for r in rows if r.label not in classes)
        if outside:
            listed = ", ".join(f"{k} ({n})" for k, n in outside.most_common())
            raise ManifestError(
                f"{path}: label(s) outside the class list {list(classes)}: {listed}. "
                "Remove those rows, or add the labels to data.classes."
            )
    return rows


def count_table(rows: list[Utterance], classes: list[str]) -> str:
    """Per-speaker, per-class counts as an aligned text table (with totals)."""
    speakers = sorted({r.speaker for r in rows}, key=lambda s: (len(s), s))
    counts = Counter((r.speaker, r.label) for r in rows)
    width = max(7, *(len(c) + 1 for c in classes))
    lines = ["speaker".ljust(9) + "".join(c.rjust(width) for c in classes) + "total".rjust(width)]
    for s in speakers:
        row = [counts[(s, c)] for c in classes]
        lines.append(s.ljust(9) + "".join(str(n).rjust(width) for n in row) + str(sum(row)).rjust(width))
    totals = [sum(counts[(s, c)] for s in speakers) for c in classes]
    lines.append("total".ljust(9) + "".join(str(n).rjust(width) for n in totals) + str(sum(totals)).rjust(width))
    return "\n".join(lines)


assert tuple(f.name for f in fields(Utterance)) == COLUMNS
