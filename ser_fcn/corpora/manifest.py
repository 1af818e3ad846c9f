"""The CSV manifest: the one schema every corpus is turned into.

Any labelled speech (IEMOCAP through its reader, or a user's RAVDESS, CREMA-D, EmoDB …)
trains the same way once it is a manifest with these columns.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..utils import atomic

COLUMNS = ("utterance_id", "path", "label", "speaker", "session", "improvised", "duration_s")


class ManifestError(ValueError):
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
