"""IEMOCAP_full_release -> manifest rows.

Only the per-dialog summary files `SessionN/dialog/EmoEvaluation/<dialog>.txt` are read;
per-annotator folders (`Categorical/`, `Attribute/`, `Self-evaluation/`) and macOS `._*`
files are ignored. The speaker is the first letter of the LAST `_` segment of the id
(`Ses01F_impro01_M003` is the male actor), never a fixed character position, which
irregular dialog names such as `Ses03M_impro05a` and `Ses05M_script01_1b` would break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..utils.errors import CorpusNotFoundError, UserError
from .audio import MIN_DURATION_S, AudioError, check_duration
from .manifest import ReadSummary, Utterance

CODES = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx")
PAPER_CLASSES = ("neu", "hap", "sad", "ang")  # the paper's 4 classes (improvised only)

_NUM = r"(\d+(?:\.\d*)?)"
_SUMMARY = re.compile(rf"^\[{_NUM} - {_NUM}\]\t(\S+)\t(\S+)\t\[([^\]]*)\]\s*$")
_UTT_ID = re.compile(r"^Ses(\d+)[FM]_[^\t ]+_([FM])[^_\s]*$")


class LabelFileError(UserError, ValueError):
    """A label file that does not follow IEMOCAP's format; names the file and line."""


@dataclass(frozen=True)
class LabelLine:
    utterance_id: str
    start_s: float
    end_s: float
    code: str


def parse_utterance_id(utt: str) -> tuple[int, str, str, bool]:
    """(session, speaker like "1M", dialog, improvised) of an IEMOCAP utterance id."""
    match = _UTT_ID.match(utt)
    if not match:
        raise ValueError(f"not an IEMOCAP utterance id: {utt!r}")
    session = int(match.group(1))
    dialog, last = utt.rsplit("_", 1)
    return session, f"{session}{last[0]}", dialog, "impro" in dialog


def parse_label_file(path: str | Path, text: str | None = None) -> list[LabelLine]:
    """Summary lines of one EmoEvaluation file. Annotator lines and headers are skipped;
    a line that starts with `[` but is not a well-formed summary line is an error."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8", errors="strict")
        except UnicodeDecodeError as e:
            raise LabelFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("["):
            continue
        match = _SUMMARY.match(line)
        if not match:
            raise LabelFileError(f"{path}:{no}: malformed summary line {line[:80]!r}")
        start, end, utt, code = float(match.group(1)), float(match.group(2)), match.group(3), match.group(4)
        if code not in CODES:
            raise LabelFileError(f"{path}:{no}: unknown emotion code {code!r} (known: {' '.join(CODES)})")
        try:
            parse_utterance_id(utt)
        except ValueError as e:
            raise LabelFileError(f"{path}:{no}: {e}") from None
        if end < start:
            raise LabelFileError(f"{path}:{no}: segment ends ({end}) before it starts ({start})")
        out.append(LabelLine(utt, start, end, code))
    return out


def find_corpus_root(root: str | Path) -> Path:
    """`root` itself, or its `IEMOCAP_full_release` child, absolute; clear error otherwise.

    Absolute, so that the wav paths read under it stay right in a manifest (which takes a
    relative path relative to its own folder, not to the working directory)."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise CorpusNotFoundError(f"IEMOCAP root {root} does not exist")
    for cand in (root, root / "IEMOCAP_full_release"):
        if any(cand.glob("Session[0-9]*/dialog/EmoEvaluation")):
            return cand
    raise CorpusNotFoundError(
        f"{root}: no Session*/dialog/EmoEvaluation folders; point data.root at IEMOCAP_full_release"
    )


def read_iemocap(
    root: str | Path,
    classes: tuple[str, ...] | list[str] = PAPER_CLASSES,
    merge_exc: bool = False,
    include_scripted: bool = False,
    progress: bool = True,
    min_duration_s: float = MIN_DURATION_S,
) -> tuple[list[Utterance], ReadSummary]:
    """Manifest rows of the wanted subset of an IEMOCAP tree, and a summary of the rest.

    Defaults are the paper's subset: improvised only, neu/hap/sad/ang, exc left out
    (`merge_exc=True` relabels exc as hap, as most later work does).
    """
    root = find_corpus_root(root)
    summary = ReadSummary()
    label_files = sorted(
        p for p in root.glob("Session*/dialog/EmoEvaluation/*.txt") if not p.name.startswith("._")
    )
    rows: list[Utterance] = []
    for lf in tqdm(label_files, desc="IEMOCAP label files", unit="file", disable=not progress):
        summary.label_files += 1
        session_dir = lf.parents[2]
        for ll in parse_label_file(lf):
            summary.summary_lines += 1
            summary.codes[ll.code] += 1
            session, speaker, dialog, improvised = parse_utterance_id(ll.utterance_id)
            label = "hap" if merge_exc and ll.code == "exc" else ll.code
            if not improvised and not include_scripted:
                summary.excluded_scripted += 1
                continue
            if label not in classes:
                summary.excluded_class[label] += 1
                continue
            wav = session_dir / "sentences" / "wav" / dialog / f"{ll.utterance_id}.wav"
            try:
                info = check_duration(wav, min_duration_s)
            except AudioError as e:
                summary.bad_audio.append(e)
                continue
            rows.append(
                Utterance(ll.utterance_id, str(wav), label, speaker, session, improvised, info.frames / info.samplerate)
            )
    summary.kept = len(rows)
    if not label_files:
        raise CorpusNotFoundError(f"{root}: no label files under Session*/dialog/EmoEvaluation")
    return rows, summary
