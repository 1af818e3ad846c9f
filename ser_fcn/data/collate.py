"""Pad-to-longest collate (the Batch dict of docs/design.md), fixed-width segment batches, masks."""

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
    if any(feat.dim() != 2 or feat.shape[0] != n_bins for feat in feats):
        raise ValueError("every item's features must be (F, T) with the same F")
    x = torch.zeros(len(items), 1, n_bins, max(feat.shape[1] for feat in feats), dtype=torch.float32)
    for row, feat in zip(x, feats):
        row[0, :, : feat.shape[1]] = feat
    return {
        "x": x,
        "lengths": torch.tensor([int(it.get("length", feat.shape[1])) for it, feat in zip(items, feats)], dtype=torch.int64),
        "y": torch.tensor([int(it["label"]) for it in items], dtype=torch.int64),
        "utt_index": torch.tensor([int(it["utt_index"]) for it in items], dtype=torch.int64),
        "ids": [str(it["utterance_id"]) for it in items],
    }


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True on valid frames."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def segment_collate(items: list[dict], width: int) -> dict:
    """`pad_collate`, then right-padded to `width` frames: the segmented baselines' fixed 3 s input."""
    batch = pad_collate(items)
    if batch["x"].shape[-1] < width:
        batch["x"] = torch.nn.functional.pad(batch["x"], (0, width - batch["x"].shape[-1]))
    return batch
