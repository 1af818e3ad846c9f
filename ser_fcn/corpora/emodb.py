"""Berlin EmoDB (Burkhardt et al., Interspeech 2005) -> manifest rows.

`wav/03a01Fa.wav`: speaker `03`, sentence `a01`, emotion letter `F`, version `a`. The
emotion letters (German initials) under the package's class names, IEMOCAP's where they
mean the same (so `data.classes '[neu,hap,sad,ang]'` picks the same emotions on every corpus):

    W Ärger -> ang   L Langeweile -> bor   E Ekel -> dis   A Angst -> fea
    F Freude -> hap  T Trauer -> sad       N neutral -> neu

Speakers (sex from the corpus documentation): male 03 10 11 12 15, female 08 09 13 14 16.
Sessions pair the sorted males with the sorted females: 1 = (03, 08), 2 = (10, 09),
3 = (11, 13), 4 = (12, 14), 5 = (15, 16). Fold k holds session k out; `corpora.folds.make_fold`
sorts its two speakers (fold 1 validates on 03 and tests on 08; the swap exchanges them), so
the 10 folds (5 sessions x swap) are leave one speaker out with a validation speaker, the
literature's speaker-independent protocol (e.g. Chen et al. 2018), every speaker tested once.
"""

from __future__ import annotations

import re
from pathlib import Path

from .by_name import Named, UnknownName, audio_files, check_classes, read_named
from .iemocap import PAPER_CLASSES
from .manifest import ReadSummary, Utterance
from ..utils.errors import CorpusNotFoundError

TITLE = "EmoDB"
EMOTIONS = {"W": "ang", "L": "bor", "E": "dis", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}
# the paper's four first, then the others in the corpus's own order (W L E A F T N)
CLASSES = PAPER_CLASSES + tuple(c for c in EMOTIONS.values() if c not in PAPER_CLASSES)
SEX = {"03": "m", "10": "m", "11": "m", "12": "m", "15": "m", "08": "f", "09": "f", "13": "f", "14": "f", "16": "f"}
MALES = sorted(s for s, x in SEX.items() if x == "m")
FEMALES = sorted(s for s, x in SEX.items() if x == "f")
SESSIONS = {k: pair for k, pair in enumerate(zip(MALES, FEMALES), start=1)}  # session -> (male, female)
SESSION_OF = {spk: k for k, pair in SESSIONS.items() for spk in pair}
_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([A-Za-z])([a-z])$")


def find_wav_folder(root: str | Path) -> Path:
    """The folder of EmoDB's wavs: `root/wav`, or `root` itself when it holds the wavs; absolute."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise CorpusNotFoundError(f"EmoDB root {root} does not exist")
    for cand in (root / "wav", root):
        if cand.is_dir() and audio_files(cand):
            return cand
    raise CorpusNotFoundError(f"{root}: no .wav files here or in {root / 'wav'}; point data.root at EmoDB's folder")


def parse_name(path: Path) -> Named:
    """(utterance id, class, speaker, session) of one EmoDB file; UnknownName otherwise."""
    match = _NAME.match(path.stem)
    if not match:
        raise UnknownName("not an EmoDB name (speaker, sentence, emotion letter, version: 03a01Fa.wav)")
    speaker, _, letter, _ = match.groups()
    if speaker not in SEX:
        raise UnknownName(f"unknown speaker {speaker!r} (EmoDB's: {', '.join(sorted(SEX))})")
    if letter not in EMOTIONS:
        raise UnknownName(f"unknown emotion letter {letter!r} (EmoDB's: {', '.join(EMOTIONS)})")
    return Named(path.stem, EMOTIONS[letter], speaker, SESSION_OF[speaker])


def read_emodb(root: str | Path, classes: tuple[str, ...] | list[str] | None = None,
               progress: bool = True) -> tuple[list[Utterance], ReadSummary]:
    """Manifest rows of an EmoDB folder (its root holding wav/, or wav/ itself) whose class is in
    `classes` (default: all seven), and a summary of what was left out."""
    classes = check_classes(classes or CLASSES, CLASSES, TITLE)
    folder = find_wav_folder(root)
    return read_named(audio_files(folder), parse_name, classes, progress, desc="EmoDB wav files")


def pairing_text() -> str:
    """The sessions as the tables and docs state them."""
    return "; ".join(f"session {k}: {m} (m) + {f} (f)" for k, (m, f) in SESSIONS.items())
