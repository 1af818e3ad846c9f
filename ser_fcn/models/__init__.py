"""Plain nn.Modules: forward(x (B, 1, F, T), lengths (B,)) -> (logits, attention or None)."""

from ser_fcn.models.alexnet_fcn import AlexNetFCN
from ser_fcn.models.attention import AttentionHead
from ser_fcn.models.baselines import SegmentClassifier
from ser_fcn.models.fcn_attention import ENCODERS, FCNAttention
from ser_fcn.models.weights import imagenet_state_dict, load_imagenet

__all__ = [
    "ENCODERS",
    "AlexNetFCN",
    "AttentionHead",
    "FCNAttention",
    "SegmentClassifier",
    "imagenet_state_dict",
    "load_imagenet",
]
