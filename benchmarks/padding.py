"""Goal 1: padded share of the spectrogram cells over one epoch, bucketed vs random batches of 32."""

from __future__ import annotations

import numpy as np

from ser_fcn.data.sampler import BucketBatchSampler, RandomBatchSampler


def bucket_sampler(lengths: np.ndarray, max_frames_per_batch: int, num_buckets: int, seed: int = 0) -> BucketBatchSampler:
    return BucketBatchSampler(lengths, max_frames_per_batch, num_buckets=num_buckets, seed=seed, num_replicas=1, rank=0)


def measure(lengths: np.ndarray, max_frames_per_batch: int, num_buckets: int, random_batch_size: int = 32) -> dict:
    bucket = bucket_sampler(lengths, max_frames_per_batch, num_buckets)
    rand = RandomBatchSampler(lengths, random_batch_size, seed=0, num_replicas=1, rank=0)
    return {
        "max_frames_per_batch": max_frames_per_batch,
        "num_buckets": num_buckets,
        "bucketed_padding": bucket.padding_fraction(0),
        "bucketed_batches": len(bucket),
        "random_batch_size": random_batch_size,
        "random_padding": rand.padding_fraction(0),
        "random_batches": len(rand),
    }
