"""Pad-to-longest collate (the Batch dict of docs/design.md), masks, 3 s segmentation."""

from __future__ import annotations

import torch
from torch import Tensor


def pad_collate(items: list[dict]) -> dict:
    """Stack ``{"features": (F, T), "label", "utt_index", "utterance_id"}`` items into a Batch.

    ``x`` is ``(B, 1, F, T_max)`` zero-padded to this batch's longest item only. An item may
    carry ``"length"`` (valid frames, e.g. of a zero-padded segment); else its T is used.
    """
    feats = [it["features"] for it in items]
    n_bins = feats[0].shape[0]
    if any(f.dim() != 2 or f.shape[0] != n_bins for f in feats):
        raise ValueError("every item's features must be (F, T) with the same F")
    x = torch.zeros(len(items), 1, n_bins, max(f.shape[1] for f in feats), dtype=torch.float32)
    for row, f in zip(x, feats):
        row[0, :, : f.shape[1]] = f
    return {
        "x": x,
        "lengths": torch.tensor([int(it.get("length", f.shape[1])) for it, f in zip(items, feats)], dtype=torch.int64),
        "y": torch.tensor([int(it["label"]) for it in items], dtype=torch.int64),
        "utt_index": torch.tensor([int(it["utt_index"]) for it in items], dtype=torch.int64),
        "ids": [str(it["utterance_id"]) for it in items],
    }


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True on valid frames."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def average_posteriors(scores: Tensor, utt_index: Tensor, from_logits: bool = True) -> tuple[Tensor, Tensor]:
    """Mean segment posteriors per utterance: ``(N, C)``, ``(N,)`` -> (sorted unique ids ``(U,)``, ``(U, C)``).

    ``scores`` are logits (softmaxed here) or, with ``from_logits=False``, probabilities.
    """
    probs = scores.softmax(dim=-1) if from_logits else scores
    ids, inverse = torch.unique(utt_index, return_inverse=True)
    sums = probs.new_zeros(len(ids), probs.shape[-1]).index_add_(0, inverse, probs)
    counts = torch.bincount(inverse, minlength=len(ids)).to(probs.dtype)
    return ids, sums / counts[:, None]
