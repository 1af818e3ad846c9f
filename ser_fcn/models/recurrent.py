"""A recurrent layer along time between the encoder and the attention head (not the paper's).

The paper's FCN sees time only through its convolutions (each output cell a fixed window of the
spectrogram), and the attention head weighs the cells one by one. Chen et al. (2018, the EmoDB
protocol's source) put a bidirectional LSTM over time after their CNN and report 79-83 % UA
on EmoDB's speaker-independent folds. `TemporalLSTM` adds one to the FCN while keeping the
paper's 2-D head: every frequency row of the encoder output is a sequence over time, read by
a bidirectional LSTM whose output is added to the row (a residual, so the model starts close
to the paper's).

The two directions are two LSTMs; the backward one reads each row reversed within its valid
steps (a gather), so padding comes after every row's valid steps in both directions and never
reaches them: a batched utterance gets its lone answer, as with packed sequences, and the
layer exports to ONNX, which packed sequences do not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ser_fcn.data.collate import lengths_to_mask
from ser_fcn.models.alexnet_fcn import mask_time

__all__ = ["TemporalLSTM", "reverse_within_lengths"]


def reverse_within_lengths(lengths: Tensor, t: int) -> Tensor:
    """(N,) valid steps -> (N, t) gather index that reverses steps 0..n-1 of each row and keeps
    the padding where it is; applying it twice gives the identity."""
    steps = torch.arange(t, device=lengths.device)[None, :]
    return torch.where(lengths_to_mask(lengths, t), lengths[:, None] - 1 - steps, steps)


class TemporalLSTM(nn.Module):
    """features (B, C, F', T'), lengths (B,) or None -> features + BiLSTM(rows), same shape,
    zero beyond `lengths`. C/2 units a direction (`channels` must be even)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"TemporalLSTM needs an even channel count, got {channels}")
        self.forward_lstm = nn.LSTM(channels, channels // 2, batch_first=True)
        self.backward_lstm = nn.LSTM(channels, channels // 2, batch_first=True)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        b, c, f, t = features.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=features.device)
        lengths = lengths.to(features.device)
        rows = features.permute(0, 2, 3, 1).reshape(b * f, t, c)  # one sequence per (utterance, freq)
        index = reverse_within_lengths(lengths[:, None].expand(b, f).reshape(-1), t)[:, :, None]

        def flip(z: Tensor) -> Tensor:
            return z.gather(1, index.expand(-1, -1, z.shape[-1]))

        ahead, _ = self.forward_lstm(rows)
        behind, _ = self.backward_lstm(flip(rows))
        out = torch.cat([ahead, flip(behind)], dim=-1).to(features.dtype)
        return mask_time(features + out.reshape(b, f, t, c).permute(0, 3, 1, 2), lengths)
