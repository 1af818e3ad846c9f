"""Invariants of the collate, the mask, 3 s segmentation and posterior averaging."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_fcn.data.collate import lengths_to_mask, pad_collate
from ser_fcn.training.metrics import average_posteriors

FAST = settings(max_examples=60, deadline=None)


def item(i, n_bins, n_frames):
    return {"features": torch.rand(n_bins, n_frames) + 1.0, "label": i % 4, "utt_index": 10 + i,
            "utterance_id": f"utt{i}"}


@FAST
@given(frames=st.lists(st.integers(1, 60), min_size=1, max_size=8), n_bins=st.integers(1, 6))
def test_pad_collate_pads_to_own_longest_with_zeros(frames, n_bins):
    items = [item(i, n_bins, t) for i, t in enumerate(frames)]
    batch = pad_collate(items)
    x, lengths = batch["x"], batch["lengths"]
    assert x.shape == (len(frames), 1, n_bins, max(frames)) and x.dtype == torch.float32
    assert lengths.dtype == batch["y"].dtype == batch["utt_index"].dtype == torch.int64
    assert lengths.tolist() == frames
    assert batch["y"].tolist() == [i % 4 for i in range(len(frames))]
    assert batch["utt_index"].tolist() == [10 + i for i in range(len(frames))]
    assert batch["ids"] == [f"utt{i}" for i in range(len(frames))]
    mask = lengths_to_mask(lengths, x.shape[-1])
    assert mask.shape == (len(frames), max(frames)) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == frames
    for i, it in enumerate(items):
        assert torch.equal(x[i, 0, :, : frames[i]], it["features"])
    assert torch.equal(x[:, 0] * ~mask[:, None, :], torch.zeros_like(x[:, 0]))  # zero beyond lengths
    assert (x[:, 0] != 0).any(1).sum(1).tolist() == frames  # features are > 0: nonzero exactly on valid frames


def test_pad_collate_uses_explicit_valid_length_and_checks_bins():
    seg = {**item(0, 3, 300), "length": 120}
    assert pad_collate([seg])["lengths"].tolist() == [120]
    with pytest.raises(ValueError):
        pad_collate([item(0, 3, 5), item(1, 4, 5)])


@FAST
@given(utt=st.lists(st.integers(0, 6), min_size=1, max_size=40), n_classes=st.integers(2, 5),
       from_logits=st.booleans())
def test_average_posteriors_matches_naive_mean(utt, n_classes, from_logits):
    scores = torch.randn(len(utt), n_classes, dtype=torch.float64)
    if not from_logits:
        scores = scores.softmax(-1)
    ids, mean = average_posteriors(scores, torch.tensor(utt), from_logits=from_logits)
    probs = scores.softmax(-1) if from_logits else scores
    assert ids.tolist() == sorted(set(utt))
    for u, row in zip(ids.tolist(), mean):
        rows = [probs[k] for k, v in enumerate(utt) if v == u]
        assert torch.allclose(row, torch.stack(rows).mean(0))
    assert torch.allclose(mean.sum(-1), torch.ones(len(ids), dtype=torch.float64))
