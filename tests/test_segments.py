import numpy as np
import pytest

from ser_fcn.data.sampler import BucketBatchSampler
from ser_fcn.data.segments import segment_spans


@pytest.mark.parametrize("seg", [1, 7, 300])
def test_spans_cover_every_frame_with_full_segments(seg):
    for n in list(range(1, 3 * seg + 3)) + [301, 1234]:
        spans = segment_spans(n, seg)
        covered = np.zeros(n, bool)
        for start, stop in spans:
            assert 0 <= start < stop <= n
            assert stop - start == min(n, seg)
            covered[start:stop] = True
        assert covered.all(), (n, seg, spans)


def test_bad_lengths_raise():
    with pytest.raises(ValueError, match="positive"):
        segment_spans(0, 300)


def test_segmented_batches_stay_under_cap_on_iemocap_shaped_lengths():
    rng = np.random.default_rng(0)
    # IEMOCAP-like durations: lognormal around 4.5 s, 100 frames per second
    frames = np.clip(rng.lognormal(np.log(4.5), 0.6, 2000) * 100, 60, 3500).astype(int)
    seg, cap = 300, 8000
    padded = [seg for n in frames for _ in segment_spans(int(n), seg)]
    sampler = BucketBatchSampler(padded, max_frames_per_batch=cap, num_buckets=8, shuffle=True, seed=0)
    for epoch in range(3):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sum(len(b) for b in batches) == len(padded)
        assert max(len(b) for b in batches) * seg <= cap
