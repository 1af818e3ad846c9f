"""Speaker-independent folds: the paper's protocol (section III-A).

Fold k holds out the k-th session: train on the others; of the held-out session's two
speakers one is validation and the other is test (`swap_speakers` exchanges them,
giving ten folds in all). A speaker never appears in two of train/validation/test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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
    train_sessions: tuple[int, ...] = ()  # set when `make_fold(train_sessions=N)` trained on only these
    train_fraction: float | None = None  # set by `thin_training`

    def describe(self) -> str:
        only = f" (training on sessions {', '.join(map(str, self.train_sessions))} only)" if self.train_sessions else ""
        if self.train_fraction is not None:
            only += f" (a fraction {self.train_fraction:g} of each training speaker's utterances of each class)"
        return (
            f"fold {self.fold}: session {self.held_out_session} held out, "
            f"validation speaker {self.val_speaker}, test speaker {self.test_speaker}; "
            f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test utterances{only}"
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


def make_fold(rows: list[Utterance], fold: int, swap_speakers: bool = False,
              train_sessions: int | None = None) -> FoldSplit:
    """Indices into `rows` of the train / validation / test utterances of `fold` (1-based).
    `train_sessions`: train on only that many of the other sessions, those after the held-out
    one in turn (fold k of five with 2: sessions k+1 and k+2, wrapping round), so that over
    all folds every session trains equally often; validation and test are unchanged. A
    learning curve over training speakers (`data.train_sessions`)."""
    check_speakers_in_one_session(rows)
    sessions = sorted({r.session for r in rows})
    if not 1 <= fold <= len(sessions):
        raise ConfigError(f"data.fold={fold} is out of range: this corpus has {len(sessions)} sessions, so folds 1..{len(sessions)}")
    if train_sessions is not None and not 1 <= train_sessions <= len(sessions) - 1:
        raise ConfigError(f"data.train_sessions={train_sessions} is out of range: with {len(sessions)} sessions, "
                          f"one held out, a fold can train on 1..{len(sessions) - 1} of them")
    held_out = sessions[fold - 1]
    training = [sessions[(fold - 1 + i) % len(sessions)] for i in range(1, len(sessions))][:train_sessions]
    speakers = sorted({r.speaker for r in rows if r.session == held_out})
    if len(speakers) != 2:
        raise ConfigError(
            f"fold {fold}: held-out session {held_out} has speakers {speakers}; "
            "the protocol needs exactly two (one for validation, one for test)"
        )
    val_spk, test_spk = reversed(speakers) if swap_speakers else speakers
    train = [i for i, r in enumerate(rows) if r.session in training]
    val = [i for i, r in enumerate(rows) if r.speaker == val_spk]
    test = [i for i, r in enumerate(rows) if r.speaker == test_spk]
    split = FoldSplit(fold, held_out, val_spk, test_spk, train, val, test,
                      tuple(sorted(training)) if train_sessions is not None else ())
    assert_disjoint_speakers(rows, split)
    return split


def thin_training(rows: list[Utterance], split: FoldSplit, fraction: float, seed: int = 0) -> FoldSplit:
    """`split` with only `fraction` of each training speaker's utterances of each class (at least
    one), drawn with `seed`: as many training utterances as fewer speakers would give, from all of
    them (`data.train_fraction`, beside `train_sessions`). Validation and test are unchanged."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"data.train_fraction={fraction} is out of range: a fraction in (0, 1]")
    groups: dict[tuple[str, str], list[int]] = {}
    for i in split.train:
        groups.setdefault((rows[i].speaker, rows[i].label), []).append(i)
    rng = np.random.default_rng(seed)
    keep = [int(i) for key in sorted(groups) for i in rng.permutation(groups[key])[:max(1, round(fraction * len(groups[key])))]]
    return replace(split, train=sorted(keep), train_fraction=fraction)


def assert_disjoint_speakers(rows: list[Utterance], split: FoldSplit) -> None:
    parts = {name: {rows[i].speaker for i in getattr(split, name)} for name in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = parts[a] & parts[b]
        if common:
            raise LeakageError(f"fold {split.fold}: speaker(s) {sorted(common)} in both {a} and {b}")
