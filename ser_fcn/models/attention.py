"""The 2-D attention layer of the paper (section II-B, eq. 1-4) and the classifier on top."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ser_fcn.data.collate import lengths_to_mask
from ser_fcn.models.running_norm import update_running_stats

__all__ = ["AttentionHead", "DROPOUT", "PooledNorm"]

# Dropout on the pooled vector c before the classifier (the paper gives none). Not AlexNet's
# 0.5: c's utterance-to-utterance differences are a small fraction of c itself (about 10 % for
# a random-init encoder), and dropout at 0.5 buries them in noise, which kept the random-init
# model at chance for epochs on the demo corpus (see alexnet_fcn.he_init_).
DROPOUT = 0.1


class PooledNorm(nn.BatchNorm1d):
    """Standardises each channel of the pooled vectors with running statistics, in training
    as in evaluation: a batch's own statistics are only used to update them (the first batch
    sets them, then an exponential average with `momentum`), never to normalise it.

    BatchNorm's batch statistics do not suit length-bucketed batches: a batch holds utterances
    of similar length, and on EmoDB length goes with emotion, so the model learnt to answer
    relative to its batch and fell to chance in evaluation (fold 1: val UA 0.41 at epoch 3, 0.15
    at epoch 6 while the training loss fell). Normalising with the running statistics keeps
    every utterance's answer independent of its batch-mates, and a batch of one needs nothing
    special. No gradient flows through the statistics.
    """

    def forward(self, input: Tensor) -> Tensor:
        if self.training and input.shape[0] > 1:
            stats = input.detach().float()  # in float32, also under bf16 autocast
            update_running_stats(self, stats.mean(0), stats.var(0))
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            training=False, eps=self.eps)


class AttentionHead(nn.Module):
    """Attention pooling over the F' x T' grid of encoder vectors, then dropout + Linear.

    The encoder output (B, C, F', T') is read as L = F' * T' vectors a_i in R^C (eq. 1);
    e_i = u^T tanh(W a_i + b) (eq. 2); alpha = softmax(lam * e) over the valid positions
    (eq. 3); c = sum_i alpha_i a_i (eq. 4). Time steps at or beyond `lengths` get -inf before
    the softmax, so their alpha is exactly 0. lam = 0 gives uniform weights, i.e. mean pooling
    over the valid positions (the ablation). `pooled_norm` puts a PooledNorm on c before the
    dropout and the Linear (a training recipe's choice, not the paper's).

    forward(features, lengths) -> (logits (B, num_classes), alpha (B, F', T')).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        attn_dim: int = 256,  # size of W a_i; the paper does not give it
        lam: float = 0.3,  # lambda of eq. 3; the paper uses 0.3 "for the balance"
        dropout: float = DROPOUT,  # before the classifier; the paper gives none
        pooled_norm: bool = False,  # PooledNorm on c before the classifier; not in the paper
    ) -> None:
        super().__init__()
        self.lam = lam
        self.proj = nn.Linear(in_channels, attn_dim)  # W, b of eq. 2
        self.context = nn.Linear(attn_dim, 1, bias=False)  # u of eq. 2
        # pooled_norm standardises each channel of c: a random-init encoder's c differs from
        # utterance to utterance by a small fraction of its common part (see DROPOUT), which kept
        # the random-init model at chance for the first epochs on real speech
        norm = [PooledNorm(in_channels)] if pooled_norm else []
        self.classifier = nn.Sequential(*norm, nn.Dropout(p=dropout), nn.Linear(in_channels, num_classes))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, _, f, t = features.shape
        a = features.flatten(2).transpose(1, 2)  # (B, L, C), position i = freq * T' + time
        e = self.context(torch.tanh(self.proj(a))).squeeze(-1)  # (B, L)
        scores = self.lam * e  # scale before masking: 0 * -inf would be nan
        if lengths is not None:
            valid = lengths_to_mask(lengths.to(features.device), t)
            valid = valid[:, None, :].expand(b, f, t).reshape(b, f * t)
            scores = scores.masked_fill(~valid, float("-inf"))
        alpha = torch.softmax(scores, dim=-1)  # (B, L)
        c = torch.bmm(alpha.unsqueeze(1), a).squeeze(1)  # (B, C)
        return self.classifier(c), alpha.view(b, f, t)
