"""The cross-validation plan: which runs a corpus's protocol has (folds, swaps, seeds), where
each one's folder is, and the settings that decide it (read from the config files and overrides
the way `fit` reads them). Nothing here trains; `crossval` runs the plan, `cv_aggregate` reads it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..configs import BASE_CONFIG

# the files of a cross-validation folder <out> and those it adds to its run folders <out>/<run>
# (a run folder's own files: utils/run_folder.py)
FOLD_META = "cv_fold.json"  # wall time, device and command of a finished fold
SETUP = "cv.json"
AGGREGATE = "aggregate.json"
SHARED = "cv_shared.json"  # in fold<k>: its training run also serves fold<k>-swap (fit --swap_run_dir)
N_SESSIONS = 5  # IEMOCAP (and the demo corpus): one fold per held-out session
SEEDS = 1  # runs per fold unless --seeds says otherwise


@dataclass(frozen=True)
class Fold:
    fold: int
    swap: bool

    @property
    def name(self) -> str:
        return f"fold{self.fold}" + ("-swap" if self.swap else "")


@dataclass(frozen=True)
class Run:
    """One fold trained with one seed."""

    fold: Fold
    seed: int = 0

    @property
    def name(self) -> str:
        return self.fold.name + (f"-seed{self.seed}" if self.seed else "")


def run_list(plan: Sequence[Fold], seeds: int = SEEDS) -> list[Run]:
    """Every fold of `plan` with each seed 0..seeds-1, seed by seed (all folds of seed 0 first)."""
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: give at least 1")
    return [Run(fold, seed) for seed in range(seeds) for fold in plan]


def swap_partner(run: Run) -> Run:
    """The run that trains on the same speakers with the same seed: fold k <-> fold k-swap."""
    return Run(Fold(run.fold.fold, not run.fold.swap), run.seed)


def count_trainings(runs: Sequence[Run], share: bool = True) -> int:
    """Training runs that `runs` take: with `share`, a fold and its swap, both among them, take one."""
    names = {r.name for r in runs}
    shared = sum(1 for r in runs if share and not r.fold.swap and swap_partner(r).name in names)
    return len(runs) - shared


SEED_SUFFIX = re.compile(r"-seed(\d+)$")  # what Run.name adds for a seed s > 0


def seed_of(run_name: str) -> int:
    """The seed of a run folder's name (`fold3-seed2` -> 2; `fold3`, `fold3-swap` -> 0)."""
    found = SEED_SUFFIX.search(run_name)
    return int(found.group(1)) if found else 0


def fold_of(run_name: str) -> str:
    """The fold of a run folder's name, without its seed (`fold3-swap-seed2` -> `fold3-swap`)."""
    return SEED_SUFFIX.sub("", run_name)


def fold_list(folds: int = 5, only: Sequence[int] | None = None, n_sessions: int = N_SESSIONS,
              swap: bool = True) -> list[Fold]:
    """`folds` = `n_sessions`: one per session (EmoBox: per fold_k folder); 2 x: also each with
    validation and test speakers swapped (`swap`: IEMOCAP-style session folds only)."""
    if folds not in (n_sessions, 2 * n_sessions) or (folds != n_sessions and not swap):
        allowed = f"{n_sessions} (one per session)" + (f" or {2 * n_sessions} (with the speaker swap)" if swap else "")
        raise ValueError(f"--folds {folds}: use {allowed}")
    out = [Fold(k, s) for s in ((False, True) if folds == 2 * n_sessions else (False,)) for k in range(1, n_sessions + 1)]
    if only:
        bad = sorted(set(only) - set(range(1, n_sessions + 1)))
        if bad:
            raise ValueError(f"--only {bad}: folds are 1..{n_sessions}")
        out = [f for f in out if f.fold in set(only)]
    return out


def emobox_folds(emobox: str) -> list[int]:
    """EmoBox's fold numbers of a corpus folder (fold_1..fold_n), checked to run 1..n."""
    from ..corpora.emobox import EmoBoxError, fold_numbers

    try:
        ks = fold_numbers(emobox)
    except EmoBoxError as e:
        raise SystemExit(f"error: --emobox {e}") from None
    if ks != list(range(1, len(ks) + 1)):
        raise SystemExit(f"error: {emobox}: fold folders {ks} do not run 1..{len(ks)}")
    return ks


def emobox_overrides(emobox: str | None, audio_root: str | None) -> list[str]:
    """The `fit` arguments that select an EmoBox corpus (none without one)."""
    if not emobox:
        return []
    if not audio_root:
        raise SystemExit("error: --emobox needs --audio-root (the folder its wav paths are relative to)")
    return ["--data.emobox", str(emobox), "--data.audio_root", str(audio_root)]


def config_setting(configs: Sequence[str], overrides: Sequence[str], key: str):
    """The dotted setting `key` (e.g. "data.root") as base.yaml, then the config files, then the
    overrides set it (None: unset)."""
    section, _, name = key.rpartition(".")
    value = None
    for f in [BASE_CONFIG, *configs]:
        node = yaml.safe_load(Path(f).read_text()) or {}
        for part in section.split(".") if section else []:
            node = node.get(part) or {} if isinstance(node, dict) else {}
        if isinstance(node, dict) and name in node:
            value = node[name]
    given = override_value(list(overrides), key)
    return yaml.safe_load(given) if given is not None else value


def corpus_sessions(configs: Sequence[str], overrides: Sequence[str]) -> tuple[int, bool]:
    """(sessions, leave one speaker out) of the corpus the fits read: a manifest's or EmoDB's /
    RAVDESS's sessions, read from the files (names and headers only); IEMOCAP and the demo
    corpus have N_SESSIONS."""
    from ..corpora.manifest import read_manifest
    from ..corpora.readers import DEFAULT, get_corpus, read_corpus

    manifest = config_setting(configs, overrides, "data.manifest")
    corpus = config_setting(configs, overrides, "data.corpus") or DEFAULT
    root = config_setting(configs, overrides, "data.root")
    if manifest:
        return len({r.session for r in read_manifest(manifest)}), False
    if corpus != DEFAULT and root:
        try:
            rows, _ = read_corpus(corpus, root, config_setting(configs, overrides, "data.classes"), progress=False)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        return len({r.session for r in rows}), get_corpus(corpus).speaker_folds
    return N_SESSIONS, False


def default_folds(configs: Sequence[str], overrides: Sequence[str], emobox: str | None = None) -> int:
    """Every fold of the corpus's protocol: EmoBox's fold_k folders; twice the sessions (with the
    swap) for a leave-one-speaker-out corpus; else one per session."""
    if emobox:
        return len(emobox_folds(emobox))
    n, speaker_folds = corpus_sessions(configs, overrides)
    return 2 * n if speaker_folds else n


def override_value(overrides: list[str], key: str) -> str | None:
    """The last value given to `--key` in command-line words (`--key v` or `--key=v`), else None."""
    found = None
    for i, word in enumerate(overrides):
        if word == f"--{key}" and i + 1 < len(overrides):
            found = overrides[i + 1]
        elif word.startswith(f"--{key}="):
            found = word.split("=", 1)[1]
    return found

