"""Utterance-level evaluation: posteriors averaged per utterance, then WA / UA.

For the FCN every utterance is one row, so the average is the row itself; for the
segmented baselines an utterance's prediction is the mean of its segments' posteriors
(the paper, section III-C). The states are torchmetrics "cat" states, so under DDP the
rows of every rank are gathered before averaging, even when one utterance's segments
were scored on different ranks.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def average_posteriors(scores: Tensor, utt_index: Tensor, from_logits: bool = True) -> tuple[Tensor, Tensor]:
    """Mean segment posteriors per utterance: ``(N, C)``, ``(N,)`` -> (sorted unique ids ``(U,)``, ``(U, C)``).

    ``scores`` are logits (softmaxed here) or, with ``from_logits=False``, probabilities.
    """
    probs = scores.softmax(dim=-1) if from_logits else scores
    ids, inverse = torch.unique(utt_index, return_inverse=True)
    sums = probs.new_zeros(len(ids), probs.shape[-1]).index_add_(0, inverse, probs)
    counts = torch.bincount(inverse, minlength=len(ids)).to(probs.dtype)
    return ids, sums / counts[:, None]


class UtterancePosteriors(Metric):
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("utt", default=[], dist_reduce_fx="cat")
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, utt_index: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> None:
        self.utt.append(utt_index)
        self.probs.append(probs.float())
        self.target.append(target)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(utterance indices, mean posteriors (U, C), targets (U,)), sorted by utterance."""
        utt, probs, target = dim_zero_cat(self.utt), dim_zero_cat(self.probs), dim_zero_cat(self.target)
        ids, mean = average_posteriors(probs, utt, from_logits=False)
        labels = torch.empty(len(ids), dtype=target.dtype, device=target.device)
        labels[torch.searchsorted(ids, utt)] = target
        return ids, mean, labels
