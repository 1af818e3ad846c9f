"""ImageNet weights for the AlexNet / VGG16 parts: torchvision's download or a local .pth.

`source` is "imagenet" (torchvision's weights enum; downloads on first use, needs internet)
or the path of a local `.pth` holding a torchvision-layout state dict (e.g. saved with
`torch.save(torchvision.models.alexnet(weights="IMAGENET1K_V1").state_dict(), "alexnet.pth")`
on a machine that has internet).

The 3-channel (RGB) conv1 weight is summed over its input channels to fit a 1-channel conv1:
a 1-channel spectrogram then gives the same output as the spectrogram repeated on 3 channels.
All errors are `WeightsError`s, raised while the model is built (before any training);
each message says how to pass a local file or choose random initialisation instead. The
command line turns them into one `error:` line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torchvision.models import AlexNet_Weights, VGG16_Weights

from ..utils.errors import UserError

__all__ = ["IMAGENET_WEIGHTS", "WeightsError", "imagenet_state_dict", "load_imagenet", "one_channel_conv"]

IMAGENET_WEIGHTS = {
    "alexnet": AlexNet_Weights.IMAGENET1K_V1,
    "vgg16": VGG16_Weights.IMAGENET1K_V1,
}


class WeightsError(UserError, ValueError):
    """ImageNet weights that cannot be had or do not fit the model."""

    def __init__(self, problem: str, arch: str):
        super().__init__(
            f"{problem}. Pass a local torchvision {arch} state dict with `--model.net.init_args.weights "
            f"/path/to/{arch}.pth` (saved on a machine with internet: `torch.save(torchvision.models.{arch}"
            f"(weights='IMAGENET1K_V1').state_dict(), '{arch}.pth')`), or train from random weights with "
            "`--model.net.init_args.weights null`."
        )


class WeightsFileNotFound(WeightsError, FileNotFoundError):
    pass


def one_channel_conv(conv: nn.Conv2d, in_channels: int = 1) -> nn.Conv2d:
    """A fresh conv like `conv` but with `in_channels` inputs (default PyTorch init)."""
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
    )


def imagenet_state_dict(arch: str, source: str | os.PathLike) -> dict[str, Tensor]:
    """Read the torchvision state dict of `arch` from `source` ("imagenet" or a .pth path)."""
    if str(source) == "imagenet":
        if arch not in IMAGENET_WEIGHTS:
            known = sorted(IMAGENET_WEIGHTS)
            raise WeightsError(f"no ImageNet weights known for arch {arch!r} (known: {known})", arch)
        weights = IMAGENET_WEIGHTS[arch]
        try:
            return dict(weights.get_state_dict(progress=True))
        except Exception as err:  # no network, proxy, corrupt download …
            raise WeightsError(f"could not download the ImageNet weights of {arch} ({weights.url}): {err}", arch) from err
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise WeightsFileNotFound(f"ImageNet weights file not found: {path}", arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")  # torch's run to pages
        reason = f"{type(err).__name__}: {first[:200]}"
        raise WeightsError(f"{path} is not a readable PyTorch state dict ({reason})", arch) from err
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            f"{path} does not hold a state dict (a mapping of parameter name -> tensor) "
            f"but a {type(state).__name__}; save `model.state_dict()` of a torchvision {arch}", arch
        )
    return dict(state)


def load_imagenet(
    module: nn.Module,
    arch: str,
    source: str | os.PathLike,
    skip: tuple[str, ...] = (),
    conv1_key: str = "features.0.weight",
) -> None:
    """Load ImageNet weights of torchvision `arch` into `module` (same key layout).

    Keys starting with a prefix in `skip` are left out on both sides (the FCN has no
    `classifier.`; the baselines keep their own last layer `classifier.6.`). Every other key
    must be present on both sides with the same shape, except `conv1_key`, which is summed
    over RGB when `module` takes 1 input channel. Raises ValueError naming the file, the key
    and both shapes otherwise.
    """
    state = imagenet_state_dict(arch, source)
    origin = "the torchvision ImageNet download" if str(source) == "imagenet" else os.fspath(source)
    target = module.state_dict()

    def kept(key: str) -> bool:
        return not key.startswith(skip)

    state = {k: v for k, v in state.items() if kept(k)}
    expected = {k for k in target if kept(k)}
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{origin} does not fit {type(module).__name__} as a torchvision {arch}: "
            f"missing keys {missing[:8]}, unexpected keys {unexpected[:8]}", arch
        )
    conv1_file, conv1_ours = state.get(conv1_key), target.get(conv1_key)
    if conv1_file is not None and conv1_ours is not None and conv1_file.dim() == 4 and conv1_file.shape[1] == 3 and conv1_ours.shape[1] == 1:
        state[conv1_key] = conv1_file.sum(dim=1, keepdim=True)  # RGB sum == spectrogram on 3 channels
    for key in sorted(state):
        if state[key].shape != target[key].shape:
            raise WeightsError(
                f"{origin}: key {key!r} has shape {tuple(state[key].shape)} in the file but "
                f"{tuple(target[key].shape)} in {type(module).__name__}", arch
            )
    result = module.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) <= set(target) - expected
