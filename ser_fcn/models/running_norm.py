"""The running statistics that PooledNorm and MaskedBatchNorm normalise with, in training too."""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def update_running_stats(norm: nn.modules.batchnorm._BatchNorm, mean: Tensor, var: Tensor) -> None:
    """The first batch sets `norm`'s running mean and variance, later ones move them towards the
    batch's by `norm.momentum` (an exponential average). No gradient flows through them. The
    statistics are kept in the buffers' dtype whatever the batch's (bf16 under autocast)."""
    mean, var = mean.to(norm.running_mean.dtype), var.to(norm.running_var.dtype)
    if int(norm.num_batches_tracked) == 0:
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
    else:
        norm.running_mean.lerp_(mean, norm.momentum)
        norm.running_var.lerp_(var, norm.momentum)
    norm.num_batches_tracked += 1
