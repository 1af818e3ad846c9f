"""AlexNet without its fully connected layers: a fully convolutional encoder (paper, II-A).

Batching must not change an answer. Pad frames are zero in the input, but after conv1 + bias
+ ReLU they are not any more, and the next conv's padding would then see non-zeros where the
lone utterance sees zero padding. So the encoder zeroes the frames beyond each row's valid
length, and tracks that length through every conv and pool. Only where it matters: a conv
or pool without padding never reads past a row's valid length for its valid outputs, and
ReLU / LRN work per time step, so the tail needs zeroing only before a layer that pads
(the input, conv2..conv5) and at the end: 6 masks instead of one after each of 13 layers,
with the same result.

LRN is computed by `LocalResponseNorm`, nn.LocalResponseNorm's formula with a hand-written
backward: PyTorch's goes through avg_pool3d and generic autograd and cost more than a
third of a CPU training step's non-conv time (see `make bench`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ser_fcn.data.collate import lengths_to_mask
from ser_fcn.models.running_norm import update_running_stats

__all__ = [
    "LRN_AFTER", "NORMS", "AlexNetFCN", "LocalResponseNorm", "MaskedBatchNorm", "MaskedGroupNorm", "NormAct", "he_init_", "mask_time",
    "layer_output_length", "relu_lrn", "check_norm", "insert_norms",
]


def _window_sum(v: Tensor, before: int, after: int, scale: float) -> Tensor:
    """``scale * (v[:, c - before] + ... + v[:, c + after])`` for every channel c (zero beyond
    the channels). A banded matrix product where that is cheap (few channels, contiguous),
    else shifted in-place adds."""
    n_ch = v.shape[1]
    if n_ch <= 128 and v.is_contiguous():
        i = torch.arange(n_ch, device=v.device)
        offset = i[None, :] - i[:, None]  # (c, c'): c' - c
        band = ((offset >= -before) & (offset <= after)).to(v.dtype) * scale
        return torch.matmul(band, v.reshape(v.shape[0], n_ch, -1)).view(v.shape)
    out = v.clone()
    for s in range(1, min(before, n_ch - 1) + 1):
        out[:, s:] += v[:, :-s]
    for s in range(1, min(after, n_ch - 1) + 1):
        out[:, :-s] += v[:, s:]
    return out.mul_(scale) if scale != 1.0 else out


class _LRNFunction(torch.autograd.Function):
    """y = x * d, d = t^-beta, t = k + alpha / size * (sum of x^2 over the channel window)."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        t = _window_sum(x * x, size // 2, (size - 1) // 2, alpha / size).add_(k)
        d = t.pow(-beta)
        ctx.save_for_backward(x, d, d / t)
        ctx.consts = (size, alpha, beta)
        return x * d

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, d, d_over_t = ctx.saved_tensors
        size, alpha, beta = ctx.consts
        # dL/dx_c = g_c d_c - 2 alpha beta / size * x_c * sum_{j: c in window(j)} g_j x_j d_j / t_j
        u = (grad * x).mul_(d_over_t)
        w = _window_sum(u, (size - 1) // 2, size // 2, -2.0 * alpha * beta / size)  # the transposed window
        gx = grad * d
        return gx.addcmul_(x, w), None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """nn.LocalResponseNorm (same formula, arguments and zero padding of the channel window)
    with a hand-written backward; 2-3x faster forward + backward on CPU."""

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() < 3 or input.shape[1] == 0:
            return super().forward(input)
        return _LRNFunction.apply(input, self.size, self.alpha, self.beta, self.k)


# Where LRN goes: the ReLUs after conv1 and conv2 in torchvision's AlexNet `features` (the
# paper's encoder, like Krizhevsky et al. 2012, has LRN after the first two convs). LRN has no
# parameters, so wrapping these ReLUs keeps every state-dict key of torchvision's.
LRN_AFTER = (1, 4)


def relu_lrn(lrn: bool = True) -> nn.Module:
    """The activation after conv1 / conv2: ReLU, then LRN when `lrn` (AlexNet's n=5,
    alpha=1e-4, beta=0.75, k=2; PyTorch, like Caffe, divides alpha by the window size)."""
    if not lrn:
        return nn.ReLU(inplace=True)
    return nn.Sequential(nn.ReLU(inplace=True), LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))


class MaskedGroupNorm(nn.GroupNorm):
    """nn.GroupNorm whose statistics are taken over each utterance's valid time steps only.

    Per utterance, so an answer never depends on the batch-mates (unlike BatchNorm, whose
    batch statistics follow the length buckets; see attention.PooledNorm), and over the valid
    steps only, so padding a row does not change it. forward(x (B, C, F, T), lengths (B,) or
    None: all valid) -> the normalised x, zero beyond `lengths`.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            return super().forward(x)
        b, c, f, t = x.shape
        g = self.num_groups
        valid = lengths_to_mask(lengths, t).to(x.dtype)  # (B, T)
        m = valid[:, None, None, None, :]  # (B, 1, 1, 1, T) against (B, G, C/G, F, T)
        xg = x.reshape(b, g, c // g, f, t) * m  # the tail may hold non-zeros: leave it out
        count = (lengths.to(x.dtype) * (c // g) * f).clamp_min(1)[:, None]  # (B, 1)
        mean = xg.sum((2, 3, 4)) / count  # (B, G)
        centred = (xg - mean[:, :, None, None, None]) * m  # zero on the tail again
        var = centred.pow(2).sum((2, 3, 4)) / count
        y = centred * torch.rsqrt(var + self.eps)[:, :, None, None, None]
        y = y.reshape(b, c, f, t) * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return mask_time(y, lengths)  # the bias would fill the tail


class MaskedBatchNorm(nn.BatchNorm2d):
    """Standardises each channel with running statistics, in training as in evaluation (as
    attention.PooledNorm does for the pooled vector): a training batch's statistics, over its
    valid time steps only, just update them (the first batch sets them, then an exponential
    average with `momentum`); no gradient flows through them.

    Why not MaskedGroupNorm: it takes each utterance's own statistics, so how loud or how spread
    an utterance is against its speaker's other utterances (what speaker normalisation leaves,
    and an arousal cue) is divided out after every conv. Running statistics keep that, and still
    leave each answer independent of its batch-mates (BatchNorm's batch statistics do not: on
    EmoDB length goes with emotion and batches are length buckets; see PooledNorm).
    It does not train on EmoDB (last-epoch train/wa 0.50 against 0.78 without it; the
    twenty-first probe in results/emodb_ablation.md); kept so that probe can be rerun.
    forward(x (B, C, F, T), lengths (B,) or None: all valid) -> the normalised x, zero beyond
    `lengths`.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.training:
            self._update(x, lengths)
        y = nn.functional.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )
        return y if lengths is None else mask_time(y, lengths)  # the bias would fill the tail

    @torch.no_grad()
    def _update(self, x: Tensor, lengths: Tensor | None) -> None:
        x = x.float()  # statistics in float32, also under bf16 autocast
        b, _, f, t = x.shape
        lengths = torch.full((b,), t, device=x.device) if lengths is None else lengths
        valid = lengths_to_mask(lengths, t).to(x.dtype)[:, None, None, :]
        count = lengths.sum().to(x.dtype) * f
        if count < 2:  # one value per channel has no variance
            return
        mean = (x * valid).sum((0, 2, 3)) / count
        var = ((x - mean[None, :, None, None]) * valid).pow(2).sum((0, 2, 3)) / (count - 1)
        update_running_stats(self, mean, var)


NORM_GROUPS = 32  # divides every AlexNet and VGG16 width (64 ... 512); Wu & He 2018's default
# name -> the normalisation an encoder may put after each conv (`norm`), built from the conv's
# output channels; None: none (the paper's)
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "group": partial(MaskedGroupNorm, NORM_GROUPS),
    "batch": MaskedBatchNorm,
}


class NormAct(nn.Module):
    """norm(x, lengths) then the activation: what follows a conv when the encoder has `norm`.

    Takes the place of the activation in `features`, so the conv keys stay torchvision's; its
    own keys (`features.1.norm.weight`, ...) are not in an ImageNet state dict and keep their
    fresh init (AlexNetFCN.imagenet_skip)."""

    def __init__(self, norm: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.norm, self.act = norm, act

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.act(self.norm(x, lengths))  # the norm zeroes the tail; ReLU and LRN keep it zero


def check_norm(norm: str | None) -> None:
    if norm is not None and norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; known norms: {sorted(NORMS)} (or null: none, the paper's)")


def insert_norms(features: nn.Sequential, norm: str) -> tuple[str, ...]:
    """Put a `norm` between every conv of `features` and the activation after it (conv -> norm
    -> activation, the NormAct in the activation's place), in place. Returns the state-dict
    prefixes of the new norms (`features.1.norm.`, ...), which ImageNet weights do not have."""
    check_norm(norm)
    places = [i + 1 for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    for i in places:
        features[i] = NormAct(NORMS[norm](features[i - 1].out_channels), features[i])
    return tuple(f"features.{i}.norm." for i in places)


def he_init_(module: nn.Module) -> nn.Module:
    """He init (kaiming_normal_, fan_out, ReLU gain; torchvision's scheme for VGG and ResNet)
    for every conv in `module`, zero biases: the random-init AlexNet's weights, in the FCN
    encoder and in the segmented baseline alike. torchvision's AlexNet keeps PyTorch's
    default init, with which the random-init FCN + attention sat at chance for epochs on the
    demo corpus (the CPU table profile's fold 3: val UA 0.25 in all 7 epochs, a constant
    answer); with this init and the head's dropout at 0.1 it reached val UA 0.44 by epoch 2.
    ImageNet weights, when given, are loaded over this.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


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

        k, stride, padding = last(layer.kernel_size), last(layer.stride), last(layer.padding)
        dilation = last(getattr(layer, "dilation", 1))
        if isinstance(padding, str):
            raise NotImplementedError(f"string padding is not supported: {layer}")
        return (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    return length


def mask_time(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero `x` (B, C, F, T) at every time step t >= lengths[b] (NaN and Inf there too)."""
    valid = lengths_to_mask(lengths, x.shape[-1])  # (B, T)
    return torch.where(valid[:, None, None, :], x, 0.0)  # one pass each way; masked_fill copies first


_PER_STEP = (nn.ReLU, nn.LocalResponseNorm, nn.Dropout, nn.Identity)


def _time_padding(layer: nn.Module) -> int | str | None:
    """Time-axis padding of a conv / pool ("same"/"valid" as given); None for any other layer."""
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        padding = layer.padding
        return padding[-1] if isinstance(padding, (tuple, list)) else padding
    return None


def _per_time_step(layer: nn.Module) -> bool:
    """True if the layer maps each time step on its own (so a zero tail stays zero and a
    non-zero tail cannot reach the valid steps)."""
    if isinstance(layer, nn.Sequential):
        return all(_per_time_step(sub) for sub in layer)
    return isinstance(layer, _PER_STEP)


class AlexNetFCN(nn.Module):
    """AlexNet's `features`, 1 input channel, LRN after conv1 and conv2 (`lrn`, the paper's
    default; False gives torchvision's AlexNet, which has none), length-masked (module doc).

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

    def __init__(self, in_channels: int = 1, lrn: bool = True, norm: str | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            relu_lrn(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            relu_lrn(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        if norm is not None:  # insert_norms names an unknown norm
            self.imagenet_skip = type(self).imagenet_skip + insert_norms(self.features, norm)
        he_init_(self.features)
        self.min_frames = self._min_frames()
        self.min_bins = self.min_frames  # square kernels, strides and pools: frequency needs what time needs

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
        dirty = False  # may x hold non-zeros beyond `lengths`?
        for layer in self.features:
            pad = _time_padding(layer)
            if pad is not None:  # conv / pool
                if dirty and pad != 0:  # it would read the tail where a lone row reads zero padding
                    x = mask_time(x, lengths)
                x = layer(x)
                dirty = True  # outputs past the new length read the tail or the bias
            elif _per_time_step(layer):
                x = layer(x)
            elif isinstance(layer, NormAct):  # reads the valid steps only, zeroes the tail
                x = layer(x, lengths)
                dirty = False
            else:  # any other layer may mix time steps: clean input, and mask after it
                if dirty:
                    x = mask_time(x, lengths)
                x = mask_time(layer(x), layer_output_length(layer, lengths))
                dirty = False
            lengths = layer_output_length(layer, lengths)
        if dirty:
            x = mask_time(x, lengths)
        return x, lengths
