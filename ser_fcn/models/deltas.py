"""Delta and delta-delta channels: a 1-channel spectrogram -> (static, delta, delta-delta).

Chen et al. 2018 (the 3-D ACRNN of the EmoDB table) feed log-mel with its deltas and
delta-deltas as three channels, and report +3.4 points of UA on EmoDB over log-mel alone.
AlexNet's conv1 has three input channels, so the three maps take the place of RGB.

Computed inside the network, after the module's input normalisation, so a checkpoint, its
export and the numpy recipe in docs/inference.md take the same 1-channel input as before.
Batching must not change an answer: each row's deltas are computed as if the row stood
alone (its last valid frame repeated past its length, before each delta, as `compute_deltas`
repeats the edge of a lone row), and the three channels are zero beyond the row's length, as the input is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ser_fcn.models.alexnet_fcn import mask_time

__all__ = ["DELTA_WINDOW", "Deltas"]

DELTA_WINDOW = 5  # frames of the regression window (+-2), HTK's and Chen et al.'s default


def _denominator(win_length: int) -> float:
    """2 * sum n^2 over n = 1..(win_length - 1) // 2: the regression's divisor."""
    return 2.0 * sum(n * n for n in range(1, (win_length - 1) // 2 + 1))


def compute_deltas(x: Tensor, win_length: int = DELTA_WINDOW) -> Tensor:
    """torchaudio.functional.compute_deltas's values (edges replicated; tests/test_deltas.py
    compares them), as one conv1d with a single filter: torchaudio's grouped conv bakes the
    batch size into a traced graph, so an exported model would take one batch size only."""
    n = (win_length - 1) // 2
    shape = x.shape
    kernel = torch.arange(-n, n + 1, dtype=x.dtype, device=x.device) / _denominator(win_length)
    y = F.pad(x.reshape(-1, 1, shape[-1]), (n, n), mode="replicate")
    return F.conv1d(y, kernel.view(1, 1, -1)).reshape(shape)


class Deltas(nn.Module):
    """forward(x (B, 1, F, T), lengths (B,) or None) -> (B, 3, F, T): x, its delta over time
    and the delta of that, each derived channel scaled by `scale` (default sqrt(2 * sum n^2),
    which gives the delta of unit white noise unit variance; compute_deltas divides by
    2 * sum n^2, which would leave the derived channels about ten times smaller than x)."""

    out_channels = 3

    def __init__(self, win_length: int = DELTA_WINDOW, scale: float | None = None) -> None:
        super().__init__()
        self.win_length = win_length
        self.scale = float(scale) if scale is not None else _denominator(win_length) ** 0.5

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"Deltas expects a 1-channel input (B, 1, F, T), got {tuple(x.shape)}")
        n_frames = x.shape[-1]
        if lengths is None:
            lengths = torch.full((x.shape[0],), n_frames, dtype=torch.long, device=x.device)
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(min=1, max=n_frames)
        # repeat each row's last valid frame over its padding, as compute_deltas's replicate
        # padding does at the end of a lone row
        t = torch.arange(n_frames, device=x.device)
        last = torch.minimum(t[None, :], lengths[:, None] - 1)  # (B, T)
        index = last[:, None, None, :].expand_as(x)
        held = torch.gather(x, -1, index)
        d1 = torch.gather(compute_deltas(held, win_length=self.win_length), -1, index)  # the same for d1
        d2 = compute_deltas(d1, win_length=self.win_length)
        out = torch.cat([held, d1 * self.scale, d2 * self.scale**2], dim=1)
        return mask_time(out, lengths)
