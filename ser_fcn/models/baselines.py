"""The paper's baselines (section III-C, Table I): torchvision AlexNet / VGG16 on 3 s segments.

Segments of fixed size (300 frames, zero-padded as in the paper's reference [9]) go through
the whole ImageNet network; only the last layer has `num_classes` outputs. The utterance
score is the mean of its segments' posteriors (done by the training code, not here).
"""

from __future__ import annotations

import torchvision
from torch import Tensor, nn

from ser_fcn.models.alexnet_fcn import LRN_AFTER, check_norm, he_init_, insert_norms, relu_lrn
from ser_fcn.models.attention import PooledNorm
from ser_fcn.models.deltas import Deltas
from ser_fcn.models.weights import load_imagenet, one_channel_conv

__all__ = ["SegmentClassifier"]

ARCHS = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16}


def _first_linear(classifier: nn.Sequential) -> nn.Linear:
    return next(m for m in classifier if isinstance(m, nn.Linear))


class SegmentClassifier(nn.Module):
    """torchvision AlexNet or VGG16 with a 1-channel conv1 and a `num_classes` last layer.

    Keeps torchvision's `features` / `avgpool` / `classifier` names, so ImageNet weights load
    with no key surgery: `weights` is None, "imagenet" or a local torchvision `.pth`. conv1 is
    summed over RGB (same as repeating the spectrogram on 3 channels); the last layer
    (`classifier.6`) keeps its fresh init. `lrn` (AlexNet only; None: True for AlexNet, as the
    paper's AlexNet and the FCN encoder, False for VGG16, which has none) puts LRN after conv1
    and conv2; torchvision's AlexNet itself has none (`lrn: false` is that network exactly).
    `pooled_norm` puts a PooledNorm on the pooled features before the classifier, as it does
    on the FCN's pooled vector (AttentionHead), so that a recipe setting it treats both alike;
    not in the paper. `deltas` feeds conv1 the segment with its delta and delta-delta
    (models/deltas.py), as FCNAttention's `deltas` does; not in the paper. `norm` ("group" or
    "batch") puts that norm between every conv and its activation, as FCNAttention's `norm` does in
    the FCN encoder; over the whole segment, its zero padding included (a segment is whole);
    the norms keep their fresh init when ImageNet weights load. Not in the paper.

    forward(x (B, 1, F, T), lengths ignored) -> (logits (B, num_classes), None).
    """

    def __init__(self, num_classes: int, arch: str = "alexnet", weights: str | None = None,
                 lrn: bool | None = None, pooled_norm: bool = False, deltas: bool = False,
                 norm: str | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; known archs: {sorted(ARCHS)}")
        check_norm(norm)  # before building the net (VGG16 is 138M weights), as insert_norms would later
        if lrn and arch != "alexnet":
            raise ValueError(f"lrn: only the alexnet arch has LRN layers, not {arch!r}")
        # torchvision's own init for the classifier, its last layer (classifier.6) included
        net = ARCHS[arch](num_classes=num_classes)
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier
        self.deltas = Deltas() if deltas else None
        self.features[0] = one_channel_conv(self.features[0], Deltas.out_channels if deltas else 1)
        if arch == "alexnet" and lrn is not False:
            for i in LRN_AFTER:
                self.features[i] = relu_lrn()
        norm_keys = insert_norms(self.features, norm) if norm is not None else ()  # wraps the LRNs too
        # He fan_out: torchvision's own VGG init (so also for the new conv1), and the FCN encoder's
        # random init for AlexNet, so the two compare like for like
        he_init_(self.features)
        if weights is not None:
            load_imagenet(self, arch, weights, skip=("classifier.6.", *norm_keys))  # the last layer is ours
        # outside `classifier`, so that torchvision's classifier keys still load
        self.pooled_norm = PooledNorm(_first_linear(net.classifier).in_features) if pooled_norm else nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, None]:
        if self.deltas is not None:
            x = self.deltas(x)  # a segment is whole: its zero padding is part of the input (module doc)
        x = self.pooled_norm(self.avgpool(self.features(x)).flatten(1))
        return self.classifier(x), None
