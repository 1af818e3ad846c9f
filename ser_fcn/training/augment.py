"""Augmentation of training batches (not in the paper): SpecAugment masking and speed perturbation.

`SERModule.training_step` applies them, in the order given (`model.augment`: one or a list), to
the normalised log spectrogram: an `Augmentation` maps `(x, lengths)` to `(x, lengths)`, with x
(B, C, F, T) zero beyond each utterance's length, and keeps it so.

SpecAugment (Park et al. 2019): a masked time-frequency unit takes the training mean (0), like
padding. torchaudio's `FrequencyMasking` / `TimeMasking` draw one mask per utterance
(`iid_masks`). A time mask is drawn inside each utterance's own frames: torchaudio would draw it
over the padded width, so a short utterance in a batch of long ones would mostly escape it (or
lose its speech to a mask meant for the longest one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import nn

from ..utils.errors import ConfigError

SPEED_FACTORS = (0.9, 1.0, 1.1)  # Ko et al. 2015's three speeds, as Kaldi's recipes and torchaudio's example


class Augmentation(nn.Module):
    """forward(x (B, C, F, T), lengths (B,)) -> (x, lengths), both of the augmented batch."""

    def set_bins(self, bins_hz: np.ndarray) -> None:
        """Told the centre frequency (Hz) of each spectrogram row at fit set-up; most ignore it."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class SpecAugment(Augmentation):
    """Args:
        freq_masks: frequency masks per utterance, each up to `freq_width` bins.
        time_masks: time masks per utterance, each up to `time_fraction` of its frames.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 20, time_masks: int = 2, time_fraction: float = 0.1):
        super().__init__()
        if min(freq_masks, freq_width, time_masks) < 0 or not 0 <= time_fraction < 1:
            raise ValueError("SpecAugment: mask counts and widths must be >= 0 and time_fraction in [0, 1)")
        self.freq_masks, self.time_masks, self.time_fraction = freq_masks, time_masks, time_fraction
        self.freq = T.FrequencyMasking(freq_width, iid_masks=True) if freq_width else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, F, T) normalised, zero beyond `lengths`; returns a masked copy (lengths unchanged)."""
        if self.freq is not None:
            for _ in range(self.freq_masks):
                x = self.freq(x)
        if self.time_masks and self.time_fraction:
            frames = torch.arange(x.shape[-1], device=x.device)
            keep = torch.ones(x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device)
            for _ in range(self.time_masks):
                width = (torch.rand(len(lengths), device=x.device) * self.time_fraction * lengths).long()
                start = (torch.rand(len(lengths), device=x.device) * (lengths - width + 1)).long()
                keep &= ~((frames >= start[:, None]) & (frames < (start + width)[:, None]))
            x = x * keep[:, None, None, :].to(x.dtype)
        return x, lengths


class SpeedPerturb(Augmentation):
    """Speed perturbation (Ko et al. 2015), done on the spectrogram rather than the waveform.

    Played at `factor` times its speed, an utterance lasts 1/factor as long and every frequency f
    moves to factor * f (pitch and formants together, as a shorter or longer vocal tract). So each
    utterance of a training batch draws a factor from `factors` at every step; its frames are
    resampled (linear interpolation) to round(length / factor), and the value at a bin centred
    on f becomes the input's at f / factor, interpolated between the bin centres (`bins_hz`, which
    SERModule takes from the data's spectrogram settings at fit set-up). Where f / factor lies
    above the top bin (a slowed utterance's top bins) nothing was recorded, and the bin takes the
    training mean (0), like padding and SpecAugment's masks. torchaudio's `SpeedPerturbation` does
    the same on the waveform, which would mean a spectrogram per step instead of the cache's.

    Args:
        factors: the speeds an utterance draws from, with equal chance (1.0: unchanged).
    """

    def __init__(self, factors: Sequence[float] = SPEED_FACTORS):
        super().__init__()
        if not factors or min(factors) <= 0:
            raise ValueError(f"SpeedPerturb: factors must be a non-empty list of positive speeds, not {factors!r}")
        self.factors = [float(f) for f in factors]
        self.bins_hz: np.ndarray | None = None
        self._warps: dict[tuple[float, int, str], torch.Tensor] = {}

    def set_bins(self, bins_hz: np.ndarray) -> None:
        bins_hz = np.asarray(bins_hz, dtype=np.float64)
        if self.bins_hz is None or not np.array_equal(bins_hz, self.bins_hz):
            self.bins_hz = bins_hz
            self._warps.clear()

    def warp(self, factor: float, n_bins: int, device: torch.device) -> torch.Tensor:
        """(n_bins, n_bins) matrix W: row k interpolates the input's rows at bins_hz[k] / factor."""
        key = (factor, n_bins, str(device))
        if key not in self._warps:
            if self.bins_hz is None or len(self.bins_hz) != n_bins:
                raise ConfigError(f"SpeedPerturb: the batch has {n_bins} spectrogram rows but the bin frequencies "
                                  f"given are {'none' if self.bins_hz is None else len(self.bins_hz)}; SERModule "
                                  "sets them from the datamodule at fit set-up (set_bins)")
            hz = self.bins_hz
            # column j: how much of input row j each output row takes (np.interp of row j's indicator);
            # below the first centre the first row's value, above the top one 0 (not recorded)
            w = np.stack([np.interp(hz / factor, hz, one, right=0.0) for one in np.eye(n_bins)], axis=1)
            self._warps[key] = torch.tensor(w, dtype=torch.float32, device=device)
        return self._warps[key]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, n_bins, _ = x.shape
        draws = torch.randint(len(self.factors), (b,)).tolist()
        out, new_lengths = [], []
        for i, d in enumerate(draws):
            factor, n = self.factors[d], int(lengths[i])
            u = x[i, :, :, :n]
            if factor != 1.0:
                u = torch.einsum("kf,cft->ckt", self.warp(factor, n_bins, x.device).to(x.dtype), u)
                m = max(1, round(n / factor))
                u = F.interpolate(u.reshape(1, c * n_bins, n), size=m, mode="linear", align_corners=False).reshape(c, n_bins, m)
            out.append(u)
            new_lengths.append(u.shape[-1])
        width = max(new_lengths)
        y = x.new_zeros(b, c, n_bins, width)
        for i, u in enumerate(out):
            y[i, :, :, : u.shape[-1]] = u
        return y, torch.tensor(new_lengths, dtype=lengths.dtype, device=lengths.device)
