"""AlexNet without its fully connected layers: a fully convolutional encoder (paper, II-A).

Batching must not change an answer. Pad frames are zero in the input, but after conv1 + bias
+ ReLU they are not any more, and the next conv's padding would then see non-zeros where the
lone utterance sees zero padding. So the encoder zeroes the frames beyond each row's valid
length after every layer, and tracks that length through every conv and pool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AlexNetFCN", "mask_time", "layer_output_length"]


def _relu_lrn() -> nn.Sequential:
    # LRN as in AlexNet (Krizhevsky et al. 2012): n=5, alpha=1e-4, beta=0.75, k=2. PyTorch,
    # like Caffe, divides alpha by the window size. The paper puts LRN after the first two convs.
    return nn.Sequential(nn.ReLU(inplace=True), nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))


def layer_output_length(layer: nn.Module, length):
    """Time-axis length after `layer` (int or int tensor): floor((L + 2p - d(k-1) - 1) / s) + 1.

    Layers that are neither conv nor pool (ReLU, LRN, dropout) keep the length; a Sequential
    is followed through.
    """
    if isinstance(layer, nn.Sequential):
        for sub in layer:
            length = layer_output_length(sub, length)
        return length
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if getattr(layer, "ceil_mode", False):
            raise NotImplementedError(f"ceil_mode pooling is not supported: {layer}")

        def last(v):  # the time axis is the last one
            return v[-1] if isinstance(v, (tuple, list)) else v

        k, s, p = last(layer.kernel_size), last(layer.stride), last(layer.padding)
        d = last(getattr(layer, "dilation", 1))
        if isinstance(p, str):
            raise NotImplementedError(f"string padding is not supported: {layer}")
        return (length + 2 * p - d * (k - 1) - 1) // s + 1
    return length


def mask_time(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero `x` (B, C, F, T) at every time step t >= lengths[b]."""
    valid = torch.arange(x.shape[-1], device=x.device) < lengths[:, None]  # (B, T)
    return x.masked_fill(~valid[:, None, None, :], 0.0)


class AlexNetFCN(nn.Module):
    """AlexNet's `features`, 1 input channel, LRN after conv1 and conv2, masked per layer.

    Module names and parameter keys are torchvision's (`features.0.weight`, `features.3…`,
    `features.6…`, `features.8…`, `features.10…`), so an ImageNet state dict's `features.*`
    loads without key surgery (see `ser_fcn.models.weights`). Channel widths are torchvision's
    (64-192-384-256-256), which is what the ImageNet weights exist for.

    The input is a 1-channel spectrogram; ImageNet's 3-channel conv1 weight is adapted by
    summing over RGB, which is exactly the same as feeding the spectrogram on 3 channels.

    forward(x (B, 1, F, T), lengths (B,)) -> (features (B, 256, F', T'), out_lengths (B,)).
    Rows shorter than `min_frames` are zero-padded up to it. `lengths` must be <= T.
    """

    out_channels = 256
    imagenet_arch = "alexnet"  # torchvision arch whose ImageNet weights fit `features`
    imagenet_skip = ("classifier.",)  # ImageNet keys this encoder has no place for

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            _relu_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            _relu_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.min_frames = self._min_frames()

    def _min_frames(self) -> int:
        """The shortest input (frames) for which every layer keeps >= 1 time step."""
        for n in range(1, 100_000):
            length, ok = n, True
            for layer in self.features:
                length = layer_output_length(layer, length)
                ok = ok and length >= 1
            if ok:
                return n
        raise RuntimeError("no input length gives a non-empty output")

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid time steps after the encoder, for inputs of `lengths` frames (after the
        padding to `min_frames` that `forward` does)."""
        lengths = torch.as_tensor(lengths).clamp(min=self.min_frames)
        for layer in self.features:
            lengths = layer_output_length(layer, lengths)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n_frames = x.shape[-1]
        if lengths is None:
            lengths = torch.full((x.shape[0],), n_frames, dtype=torch.long, device=x.device)
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(min=self.min_frames)
        if n_frames < self.min_frames:
            x = nn.functional.pad(x, (0, self.min_frames - n_frames))
        x = mask_time(x, lengths)  # the contract says it is zero already; make sure
        for layer in self.features:
            x = layer(x)
            lengths = layer_output_length(layer, lengths)
            x = mask_time(x, lengths)
        return x, lengths
