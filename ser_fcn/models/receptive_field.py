"""Where the encoder's output cells sit on its input spectrogram (receptive-field arithmetic).

Upsampling an attention map: nearest encoder cell by receptive-field centre. The
encoder output cell (f, t) is centred on input bin c_f + f * J_f and frame c_t + t * J_t,
where J is the encoder's total stride and c the centre of cell 0, both computed from its
conv/pool layers (AlexNet: J = 32, c = 31 on both axes). Each spectrogram frame (bin) takes
the weight of the valid cell whose centre is nearest, so the map is aligned with the
spectrogram; frames beyond the utterance stay 0. `density=True` divides each cell's weight
by the number of pixels it covers, so the map sums to 1 like the attention itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class CellGrid:
    """Where encoder output cells sit on the input: centre of cell k = centre + k * jump."""

    jump_f: float
    centre_f: float
    jump_t: float
    centre_t: float


def encoder_grid(encoder: nn.Module) -> CellGrid:
    """Total stride and centre of the first output cell, per axis, from the conv/pool layers
    of `encoder` in order (receptive-field arithmetic: centre += ((k - 1) / 2 - p) * jump)."""

    def axis(v, i):
        return v[i] if isinstance(v, (tuple, list)) else v

    out = []
    for i in (0, 1):  # (frequency, time) = the (H, W) of the conv layers
        jump, centre = 1.0, 0.0
        for m in encoder.modules():
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                k, s, p = axis(m.kernel_size, i), axis(m.stride, i), axis(m.padding, i)
                d = axis(getattr(m, "dilation", 1), i)
                centre += ((d * (k - 1)) / 2 - p) * jump
                jump *= s
        out += [jump, centre]
    return CellGrid(*out)


def cell_index(n: int, n_cells: int, jump: float, centre: float) -> np.ndarray:
    """For each of `n` input positions, the index of the output cell whose centre is nearest."""
    return np.clip(np.floor((np.arange(n) - centre) / jump + 0.5), 0, n_cells - 1).astype(int)


def upsample_attention(
    alpha: np.ndarray | torch.Tensor,
    n_bins: int,
    n_frames: int,
    grid: CellGrid,
    width: int | None = None,
    density: bool = False,
) -> np.ndarray:
    """`alpha` (F', T_valid') -> (n_bins, width or n_frames) on the spectrogram's grid.

    `alpha` holds the valid time steps only; `n_frames` are the utterance's valid frames.
    Frames n_frames .. width-1 (padding) are 0.
    """
    att = alpha.detach().cpu().numpy() if torch.is_tensor(alpha) else np.asarray(alpha)
    att = att.astype(np.float64)
    fi = cell_index(n_bins, att.shape[0], grid.jump_f, grid.centre_f)
    ti = cell_index(n_frames, att.shape[1], grid.jump_t, grid.centre_t)
    up = att[fi][:, ti]
    if density:
        pixels = np.bincount(fi, minlength=att.shape[0])[:, None] * np.bincount(ti, minlength=att.shape[1])[None, :]
        up = up / pixels[fi][:, ti]
    out = np.zeros((n_bins, width or n_frames))
    out[:, :n_frames] = up
    return out
