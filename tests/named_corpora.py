"""Tiny EmoDB and RAVDESS layouts for the tests (importable: pytest puts tests/ on sys.path).

Short tones whose pitch follows the emotion, so that a model has something to learn; the
real corpora are not in this repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(path: Path, pitch_hz: float, seconds: float = 0.4, sr: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * pitch_hz * t) + 0.01 * rng.standard_normal(t.size)
    data = x if channels == 1 else np.stack([x * (1 - 0.5 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sr, subtype="PCM_16")
    return path


EMODB_LETTERS = "WLEAFTN"


def write_emodb(root: Path, per_class: int = 2, letters: str = EMODB_LETTERS, seconds: float = 0.4) -> dict:
    """`root/wav/<speaker><sentence><letter><version>.wav` for every EmoDB speaker, `per_class`
    sentences per emotion letter; returns {(speaker, letter): count}."""
    from ser_fcn.corpora.emodb import SEX

    counts = {}
    sentences = ["a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"]
    for s_i, speaker in enumerate(sorted(SEX)):
        for l_i, letter in enumerate(letters):
            for k in range(per_class):
                tone(root / "wav" / f"{speaker}{sentences[k]}{letter}a.wav", 150 + 60 * l_i + 5 * s_i, seconds,
                     seed=100 * s_i + 10 * l_i + k)
            counts[(speaker, letter)] = per_class
    return counts


def ravdess_name(actor: int, emotion: int, modality: int = 3, channel: int = 1, intensity: int = 1,
                 statement: int = 1, repetition: int = 1) -> str:
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


def write_ravdess(root: Path, actors: int = 24, emotions: tuple[int, ...] = tuple(range(1, 9)),
                  seconds: float = 0.3) -> list[Path]:
    """Audio-only speech `root/Actor_XX/03-01-EE-01-01-01-XX.wav`, one per actor and emotion, at
    48 kHz; every third file stereo. Returns the paths written."""
    out = []
    for a in range(1, actors + 1):
        for e in emotions:
            out.append(tone(root / f"Actor_{a:02d}" / f"{ravdess_name(a, e)}.wav", 140 + 50 * e + 3 * a, seconds,
                            sr=48000, channels=2 if (a + e) % 3 == 0 else 1, seed=10 * a + e))
    return out
