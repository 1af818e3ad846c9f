"""Speaker-independent folds: the paper's protocol (section III-A).

Fold k holds out the k-th session: train on the others; of the held-out session's two
speakers one is validation and the other is test (`swap_speakers` exchanges them,
giving ten folds in all). A speaker never appears in two of train/validation/test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..utils.errors import ConfigError, UserError
from .manifest import Utterance


class LeakageError(UserError, ValueError):
    """A split that would put one speaker in two of train/validation/test."""


@dataclass(frozen=True)
class FoldSplit:
    fold: int
    held_out_session: int
    val_speaker: str
    test_speaker: str
    train: list[int]
    val: list[int]
    test: list[int]

    def describe(self) -> str:
        return (
            f"fold {self.fold}: session {self.held_out_session} held out, "
            f"validation speaker {self.val_speaker}, test speaker {self.test_speaker}; "
            f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test utterances"
        )

    def swapped(self) -> FoldSplit:
        """The same fold with its validation and test speakers exchanged (fold k-swap)."""
        return replace(self, val_speaker=self.test_speaker, test_speaker=self.val_speaker, val=self.test, test=self.val)


def check_speakers_in_one_session(rows: list[Utterance]) -> None:
    """A speaker recorded in two sessions would land in train and test at once."""
    sessions: dict[str, set[int]] = {}
    for r in rows:
        sessions.setdefault(r.speaker, set()).add(r.session)
    shared = {s: sorted(v) for s, v in sessions.items() if len(v) > 1}
    if shared:
        listed = "; ".join(f"{s} in sessions {v}" for s, v in sorted(shared.items()))
        raise LeakageError(f"speaker(s) appear in more than one session, so folds by session would leak them: {listed}")


def num_folds(rows: list[Utterance]) -> int:
    return len({r.session for r in rows})


def make_fold(rows: list[Utterance], fold: int, swap_speakers: bool = False) -> FoldSplit:
    """Indices into `rows` of the train / validation / test utterances of `fold` (1-based)."""
    check_speakers_in_one_session(rows)
    sessions = sorted({r.session for r in rows})
    if not 1 <= fold <= len(sessions):
        raise ConfigError(f"data.fold={fold} is out of range: this corpus has {len(sessions)} sessions, so folds 1..{len(sessions)}")
    held_out = sessions[fold - 1]
    speakers = sorted({r.speaker for r in rows if r.session == held_out})
    if len(speakers) != 2:
        raise ConfigError(
            f"fold {fold}: held-out session {held_out} has speakers {speakers}; "
            "the protocol needs exactly two (one for validation, one for test)"
        )
    val_spk, test_spk = reversed(speakers) if swap_speakers else speakers
    train = [i for i, r in enumerate(rows) if r.session != held_out]
    val = [i for i, r in enumerate(rows) if r.speaker == val_spk]
    test = [i for i, r in enumerate(rows) if r.speaker == test_spk]
    split = FoldSplit(fold, held_out, val_spk, test_spk, train, val, test)
    assert_disjoint_speakers(rows, split)
    return split


def assert_disjoint_speakers(rows: list[Utterance], split: FoldSplit) -> None:
    parts = {name: {rows[i].speaker for i in getattr(split, name)} for name in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = parts[a] & parts[b]
        if common:
            raise LeakageError(f"fold {split.fold}: speaker(s) {sorted(common)} in both {a} and {b}")
