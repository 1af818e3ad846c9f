"""Per-speaker standardisation of the spectrogram bins (not the paper's; `data.speaker_norm`).

Speaker-independent SER tests on voices the model never heard; a speaker's own average
spectrum and spread (vocal tract, recording level) are a large share of what differs between
voices and say nothing about emotion. Standardising every bin with the mean and standard
deviation over all of one speaker's frames takes them out while keeping what changes within
the speaker (an angry utterance stays louder than that speaker's sad one). The statistics use
no labels, so they are taken for the validation and test speakers too, from their own
utterances, as for the training speakers (the usual practice under leave-one-speaker-out).

Where no speaker's set of utterances is at hand (`predict` on a file, the timeline of a
recording), the audio at hand stands for its speaker: the file's own frames (the timeline: its
speech regions), or with `predict --same-speaker` all the files given.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, TypeVar

import numpy as np
import torch

__all__ = ["SpeakerStats", "STD_FLOOR", "own_statistics", "speaker_statistics", "standardise"]

# (n_bins,) float32 mean and std of one speaker's frames
SpeakerStats = tuple[np.ndarray, np.ndarray]

STD_FLOOR = 1e-4  # a bin that never varies (digital silence) is centred, not blown up

Features = TypeVar("Features", np.ndarray, torch.Tensor)


def speaker_statistics(speakers: list[str], load: Callable[[int], np.ndarray | torch.Tensor]) -> dict[str, SpeakerStats]:
    """speaker -> per-bin (mean, std) over every frame of that speaker's items.

    `speakers[i]` is item i's speaker; `load(i)` its (n_bins, n_frames) features. Sums in float64.
    """
    total: dict[str, np.ndarray] = {}
    total_sq: dict[str, np.ndarray] = {}
    frames: dict[str, int] = defaultdict(int)
    for i, spk in enumerate(speakers):
        feats = np.asarray(load(i), dtype=np.float64)
        if spk not in total:
            total[spk], total_sq[spk] = np.zeros(feats.shape[0]), np.zeros(feats.shape[0])
        total[spk] += feats.sum(1)
        total_sq[spk] += (feats * feats).sum(1)
        frames[spk] += feats.shape[1]
    stats = {}
    for spk, n in frames.items():
        if n == 0:
            raise ValueError(f"speaker {spk!r} has no frames to take statistics from")
        mean = total[spk] / n
        std = np.sqrt(np.maximum(total_sq[spk] / n - mean * mean, 0.0))
        stats[spk] = (mean.astype(np.float32), np.maximum(std, STD_FLOOR).astype(np.float32))
    return stats


def own_statistics(n: int, load: Callable[[int], np.ndarray | torch.Tensor]) -> SpeakerStats:
    """(mean, std) over the frames of items 0..n-1 (`load(i)`) taken as one speaker's: the audio
    at hand standing for its speaker (one file: `own_statistics(1, lambda _: spec)`)."""
    return speaker_statistics(["speaker"] * n, load)["speaker"]


def standardise(feats: Features, stats: SpeakerStats) -> Features:
    """(n_bins, n_frames) features with every bin standardised by `stats`, in feats' kind and dtype."""
    mean, std = stats
    if isinstance(feats, torch.Tensor):
        mean, std = (torch.from_numpy(v).to(feats.device, feats.dtype) for v in (mean, std))
    else:
        mean, std = mean.astype(feats.dtype), std.astype(feats.dtype)
    return (feats - mean[:, None]) / std[:, None]
