"""Utterance-level evaluation: posteriors averaged per utterance, then WA / UA.

WA is accuracy. UA has one definition everywhere (training logs, results.json, the
cross-validation aggregate, `evaluate`): the mean recall over the classes present in the
reference labels (sklearn's balanced accuracy). A class that no reference utterance has is
left out even when it is predicted; torchmetrics' macro accuracy would count it as recall 0,
so it is not used for UA.

For the FCN every utterance is one row, so the average is the row itself; for the
segmented baselines an utterance's prediction is the mean of its segments' posteriors
(the paper, section III-C). The states are torchmetrics "cat" states, so under DDP the
rows of every rank are gathered before averaging, even when one utterance's segments
were scored on different ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def confusion_scores(cm: Sequence[Sequence[int]] | Tensor) -> tuple[float, float]:
    """(WA, UA) of a confusion matrix (rows: reference, columns: predicted); NaN when empty."""
    rows = cm.tolist() if isinstance(cm, Tensor) else [list(r) for r in cm]
    total = sum(map(sum, rows))
    correct = sum(rows[i][i] for i in range(len(rows)))
    recalls = [rows[i][i] / sum(row) for i, row in enumerate(rows) if sum(row)]
    wa = correct / total if total else float("nan")
    return wa, sum(recalls) / len(recalls) if recalls else float("nan")


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
