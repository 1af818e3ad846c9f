"""Mixup of training batches (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"; not
in the SER paper).

Each training step draws one lambda ~ Beta(alpha, alpha) and a permutation of the batch; every
utterance's normalised spectrogram becomes lambda * its own + (1 - lambda) * its partner's, and
the loss lambda * CE(its label) + (1 - lambda) * CE(the partner's label) (`SERModule`). Unlike
`model.augment` it acts on the labels too, so it has its own argument (`model.mixup`), applied
after the augmentations.

Variable lengths: both spectrograms are zero beyond their own length, so the mix is the longer
one alone (scaled) past the shorter one's end, and the mixed utterance keeps the longer length;
padding beyond it stays exactly 0. The length sampler's buckets keep partners of similar length.
"""

from __future__ import annotations

import torch
from torch import nn


class Mixup(nn.Module):
    """Args:
        alpha: Beta(alpha, alpha) that lambda is drawn from (Zhang et al. used 0.1-0.4 on
            ImageNet; small alpha keeps most mixes close to one utterance).
    """

    def __init__(self, alpha: float = 0.2):
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"Mixup: alpha must be > 0, not {alpha!r}")
        self.alpha = float(alpha)

    @staticmethod
    def mix(x: torch.Tensor, lengths: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lam * x + (1 - lam) * x[perm], the longer of each pair's lengths)."""
        return lam * x + (1 - lam) * x[perm], torch.maximum(lengths, lengths[perm])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
        """x (B, C, F, T) zero beyond `lengths` -> (mixed x, mixed lengths, lambda, partner of each)."""
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        return (*self.mix(x, lengths, lam, perm), lam, perm)
