"""Utterance-level evaluation: posteriors averaged per utterance, then WA / UA.

For the FCN every utterance is one row, so the average is the row itself; for the
segmented baselines an utterance's prediction is the mean of its segments' posteriors
(the paper, section III-C). The states are torchmetrics "cat" states, so under DDP the
rows of every rank are gathered before averaging, even when one utterance's segments
were scored on different ranks.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..data.collate import average_posteriors


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
