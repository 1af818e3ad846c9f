"""Corpora labelled by their file names (EmoDB, RAVDESS): names -> manifest rows and a summary.

Each reader gives `read_named` its audio files and a `parse` that turns one path into a
`Named` (label, speaker, session), raises `UnknownName` (the name does not follow the corpus's
scheme: listed and counted, never guessed) or `LeftOut` (a file the protocol does not use, e.g.
RAVDESS's song files: counted by reason). Audio is checked as by the other readers
(`audio.check_duration`); an unusable file is skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .audio import AudioError, check_duration
from .manifest import ReadSummary, Utterance
from ..utils.errors import ConfigError


class UnknownName(ValueError):
    """A file name outside the corpus's naming scheme; the message says what is wrong."""


class LeftOut(Exception):
    """A well-named file that the protocol leaves out; the message is the reason it is counted under."""


@dataclass(frozen=True)
class Named:
    utterance_id: str
    label: str
    speaker: str
    session: int


def check_classes(classes: Sequence[str], known: Sequence[str], corpus: str) -> list[str]:
    """`classes` as a list, every one a class of the corpus; else a clear error."""
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise ConfigError(f"data.classes {unknown} are not classes of {corpus} (its classes: {', '.join(known)})")
    return list(classes)


def read_named(files: Iterable[Path], parse: Callable[[Path], Named], classes: Sequence[str],
               progress: bool = True, desc: str = "wav files") -> tuple[list[Utterance], ReadSummary]:
    """Manifest rows of `files` whose label is in `classes`; what was left out is in the summary.
    Two files with one name (utterance id) are both listed as unknown: neither is guessed."""
    summary, named = ReadSummary(), []
    for path in tqdm(sorted(files), desc=desc, unit="file", disable=not progress):
        summary.audio_files += 1
        try:
            n = parse(path)
        except UnknownName as e:
            summary.unknown_names.append(f"{path}: {e}")
            continue
        except LeftOut as e:
            summary.left_out[str(e)] += 1
            continue
        named.append((path, n))
    seen: dict[str, list[Path]] = {}
    for path, n in named:
        seen.setdefault(n.utterance_id, []).append(path)
    rows = []
    for path, n in named:
        if len(seen[n.utterance_id]) > 1:
            others = ", ".join(str(p) for p in seen[n.utterance_id] if p != path)
            summary.unknown_names.append(f"{path}: the same utterance name as {others}")
            continue
        summary.summary_lines += 1
        summary.codes[n.label] += 1
        if n.label not in classes:
            summary.excluded_class[n.label] += 1
            continue
        try:
            info = check_duration(path)
        except AudioError as e:
            summary.bad_audio.append(e)
            continue
        rows.append(Utterance(n.utterance_id, str(path), n.label, n.speaker, n.session, False,
                              info.frames / info.samplerate))
    summary.kept = len(rows)
    return rows, summary


def audio_files(folder: Path, suffixes: tuple[str, ...] = (".wav",), recursive: bool = False) -> list[Path]:
    """Files of `folder` (and below, if `recursive`) with one of `suffixes` (any case)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return [p for p in found if p.is_file() and p.suffix.lower() in suffixes]
