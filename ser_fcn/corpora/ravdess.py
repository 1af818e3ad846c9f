"""RAVDESS (Livingstone & Russo 2018), its audio-only speech -> manifest rows.

`Actor_01/03-01-05-02-01-01-01.wav`: seven two-digit fields,

    modality    01 full audio-video, 02 video-only, 03 audio-only
    vocal       01 speech, 02 song
    emotion     01 neutral -> neu, 02 calm -> cal, 03 happy -> hap, 04 sad -> sad,
                05 angry -> ang, 06 fearful -> fea, 07 disgust -> dis, 08 surprised -> sur
    intensity   01 normal, 02 strong
    statement   01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
    repetition  01, 02
    actor       01..24 (odd male, even female)

Audio-only speech is kept; song files and the video modalities are left out and counted.
Files are looked for anywhere below the root (so the root may hold `Actor_*` folders of the
speech and the song archives). Sessions pair actors (1, 2) ... (23, 24): 12 sessions, so 24
folds with the speaker swap, every actor tested once. The files are 48 kHz, some stereo:
`audio.load_audio` resamples to 16 kHz and averages the channels.
"""

from __future__ import annotations

import re
from pathlib import Path

from .by_name import LeftOut, Named, UnknownName, audio_files, check_classes, read_named
from .iemocap import PAPER_CLASSES
from .manifest import ReadSummary, Utterance
from ..utils.errors import CorpusNotFoundError

TITLE = "RAVDESS"
EMOTIONS = {1: "neu", 2: "cal", 3: "hap", 4: "sad", 5: "ang", 6: "fea", 7: "dis", 8: "sur"}
# the paper's four first, then the others in the corpus's own order (as emodb.CLASSES)
CLASSES = PAPER_CLASSES + tuple(c for c in EMOTIONS.values() if c not in PAPER_CLASSES)
ACTORS = range(1, 25)
AUDIO_ONLY, SPEECH = 3, 1
MODALITIES = {1: "full audio-video", 2: "video-only", 3: "audio-only"}
SUFFIXES = (".wav", ".mp4")  # the video modalities come as .mp4: counted when they are there
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RANGES = {"modality": (1, 3), "vocal channel": (1, 2), "emotion": (1, 8), "intensity": (1, 2),
           "statement": (1, 2), "repetition": (1, 2), "actor": (1, 24)}


def session_of(actor: int) -> int:
    return (actor + 1) // 2


def parse_name(path: Path) -> Named:
    """(utterance id, class, speaker "01".."24", session) of one RAVDESS file; UnknownName for a
    name outside the scheme, LeftOut for song and video files."""
    match = _NAME.match(path.stem)
    if not match:
        raise UnknownName("not a RAVDESS name (seven two-digit fields: 03-01-05-02-01-01-01.wav)")
    values = dict(zip(_RANGES, map(int, match.groups())))
    for field, (lo, hi) in _RANGES.items():
        if not lo <= values[field] <= hi:
            raise UnknownName(f"{field} {values[field]:02d} is outside {lo:02d}..{hi:02d}")
    actor = values["actor"]
    folder = re.fullmatch(r"Actor_(\d+)", path.parent.name)
    if folder and int(folder.group(1)) != actor:
        raise UnknownName(f"actor {actor:02d} in the name but the file is in {path.parent.name}")
    if values["modality"] != AUDIO_ONLY:
        raise LeftOut(f"video ({MODALITIES[values['modality']]})")
    if path.suffix.lower() != ".wav":
        raise UnknownName(f"audio-only but not a .wav file ({path.suffix})")
    if values["vocal channel"] != SPEECH:
        raise LeftOut("song (vocal channel 02)")
    return Named(path.stem, EMOTIONS[values["emotion"]], f"{actor:02d}", session_of(actor))


def find_root(root: str | Path) -> Path:
    root = Path(root).absolute()
    if not root.is_dir():
        raise CorpusNotFoundError(f"RAVDESS root {root} does not exist")
    if not audio_files(root, SUFFIXES, recursive=True):
        raise CorpusNotFoundError(f"{root}: no .wav files in it or below it; point data.root at RAVDESS's folder (Actor_* below it)")
    return root


def read_ravdess(root: str | Path, classes: tuple[str, ...] | list[str] | None = None,
                 progress: bool = True) -> tuple[list[Utterance], ReadSummary]:
    """Manifest rows of the audio-only speech under `root` whose class is in `classes` (default:
    all eight), and a summary of what was left out."""
    classes = check_classes(classes or CLASSES, CLASSES, TITLE)
    folder = find_root(root)
    return read_named(audio_files(folder, SUFFIXES, recursive=True), parse_name, classes, progress,
                      desc="RAVDESS files")


def pairing_text() -> str:
    return "; ".join(f"session {k}: actors {2 * k - 1:02d} (m) + {2 * k:02d} (f)" for k in range(1, 13))
