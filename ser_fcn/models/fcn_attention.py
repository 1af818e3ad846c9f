"""The paper's model: a fully convolutional encoder followed by the 2-D attention head."""

from __future__ import annotations

from torch import Tensor, nn

from ser_fcn.models.alexnet_fcn import AlexNetFCN
from ser_fcn.models.attention import DROPOUT, AttentionHead
from ser_fcn.models.deltas import Deltas
from ser_fcn.models.recurrent import TemporalLSTM
from ser_fcn.models.weights import load_imagenet

__all__ = ["ENCODERS", "FCNAttention"]

# name -> encoder class; a class has `out_channels`, `min_frames`, `output_lengths`,
# `imagenet_arch` and `imagenet_skip`, and forward(x, lengths) -> (features, out_lengths)
ENCODERS: dict[str, type[nn.Module]] = {"alexnet": AlexNetFCN}


class FCNAttention(nn.Module):
    """Attention based fully convolutional network (paper, Fig. 2).

    `weights`: None (random init), "imagenet" (torchvision download) or the path of a local
    torchvision `.pth`; only the encoder is initialised from it (conv1 summed over RGB).
    `lrn`: LRN after conv1 and conv2 (the paper's encoder). torchvision's ImageNet AlexNet was
    trained without LRN, so under LRN its conv2..conv5 weights see rescaled inputs at first;
    fine-tuning adapts them (`lrn: false` gives the ImageNet network exactly).
    `norm`: "group" puts a MaskedGroupNorm (per utterance, over its valid steps) between every
    conv and its activation, "batch" a MaskedBatchNorm (running statistics of the valid steps of
    the training batches); a training recipe's choice for random init, not the paper's.
    `deltas`: the spectrogram with its delta and delta-delta over time as conv1's three input
    channels (models/deltas.py; Chen et al.'s 3-D input), in place of one; not the paper's.
    With ImageNet weights conv1 then keeps its three RGB filters as they are.
    `recurrent`: a residual bidirectional LSTM along time over every frequency row of the
    encoder output, before the attention head (models/recurrent.py; after Chen et al.'s
    ACRNN); not the paper's.

    forward(x (B, 1, F, T), lengths (B,)) -> (logits (B, num_classes), attention (B, F', T')).
    """

    def __init__(
        self,
        num_classes: int,
        encoder: str = "alexnet",
        weights: str | None = None,
        lrn: bool = True,  # LRN after conv1 and conv2, as in the paper's AlexNet encoder
        lam: float = 0.3,  # lambda of eq. 3, the paper's value
        attn_dim: int = 256,  # the paper does not give it
        dropout: float = DROPOUT,  # the paper does not give it (attention.DROPOUT)
        pooled_norm: bool = False,  # PooledNorm on the pooled vector (AttentionHead); not in the paper
        norm: str | None = None,  # "group" / "batch": a norm after every conv (alexnet_fcn.NORMS); not in the paper
        deltas: bool = False,  # spectrogram + delta + delta-delta as 3 input channels (Deltas); not in the paper
        recurrent: bool = False,  # a residual BiLSTM along time before the head (TemporalLSTM); not in the paper
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; known encoders: {sorted(ENCODERS)}")
        self.deltas = Deltas() if deltas else None
        in_channels = Deltas.out_channels if deltas else 1
        self.encoder = ENCODERS[encoder](in_channels=in_channels, lrn=lrn, norm=norm)
        if weights is not None:
            enc = self.encoder
            load_imagenet(enc, enc.imagenet_arch, weights, skip=enc.imagenet_skip)
        self.recurrent = TemporalLSTM(self.encoder.out_channels) if recurrent else None
        self.head = AttentionHead(
            self.encoder.out_channels, num_classes, attn_dim=attn_dim, lam=lam, dropout=dropout,
            pooled_norm=pooled_norm,
        )

    @property
    def min_frames(self) -> int:
        """Shortest input (frames) the encoder maps to >= 1 step; shorter ones are zero-padded."""
        return self.encoder.min_frames

    @property
    def min_bins(self) -> int:
        """Fewest spectrogram rows the encoder maps to >= 1 step (data.n_bins must reach it)."""
        return self.encoder.min_bins

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid time steps of the attention map for inputs of `lengths` frames."""
        return self.encoder.output_lengths(lengths)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The first half of forward: (deltas +) encoder -> (features (B, C, F', T'), out_lengths)."""
        if self.deltas is not None:
            x = self.deltas(x, lengths)
        return self.encoder(x, lengths)

    def pool(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The second half: encoder cells -> (recurrent layer +) attention head -> (logits, alpha).
        The timeline pools windows of one shared encoding with it (inference/timeline.py)."""
        if self.recurrent is not None:
            features = self.recurrent(features, lengths)
        return self.head(features, lengths)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.pool(*self.encode(x, lengths))
