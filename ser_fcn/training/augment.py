"""SpecAugment-style masking of training batches (Park et al. 2019; not in the paper).

Applied by `SERModule.training_step` to the normalised log spectrogram, so a masked
time-frequency unit takes the training mean (0), like padding. torchaudio's
`FrequencyMasking` / `TimeMasking` draw one mask per utterance (`iid_masks`). A time mask is
drawn inside each utterance's own frames: torchaudio would draw it over the padded width,
so a short utterance in a batch of long ones would mostly escape it (or lose its speech
to a mask meant for the longest one).
"""

from __future__ import annotations

import torch
import torchaudio.transforms as T
from torch import nn


class SpecAugment(nn.Module):
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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, F, T) normalised, zero beyond `lengths`; returns a masked copy."""
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
        return x
