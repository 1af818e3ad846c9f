"""Batch samplers for variable-length spectrograms: length-bucketed and frame-capped, DDP-aware.

After lhotse's dynamic bucketing: bucket edges split the corpus into buckets of about equal
total frames, each bucket is packed into batches capped by the padded size ``B * T_max``
(what memory sees), shuffling is seeded by ``seed + epoch`` and every rank gets the same
number of batches.

The number of batches per epoch is the same in every epoch (a bound computed once, see
``BucketBatchSampler``): Lightning reads ``len(dataloader)`` once, before the first epoch,
and stops an epoch after that many batches, so an epoch that packed into more batches would
silently lose its last ones.

Lightning: under DDP, Lightning replaces a DataLoader's sampler with a ``DistributedSampler``
unless the trainer has ``use_distributed_sampler=False``; the datamodule sets it, and these
samplers shard by rank themselves. Lightning calls ``set_epoch`` on
``dataloader.batch_sampler.sampler``, which is why the samplers expose ``sampler``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

# Defaults of SERDataModule's training batches: 8000 padded frames (80 s of 10 ms frames) fit
# FCN+attention training in well under 3 GB on a CPU; 40 buckets give ~3 % padding on
# IEMOCAP-like lengths where 10 gave ~11 % (`make bench`).
MAX_FRAMES_PER_BATCH = 8000
NUM_BUCKETS = 40


def _dist_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialized = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"invalid rank {rank} for num_replicas={num_replicas}")
    return num_replicas, rank


class _PlannedBatchSampler(Sampler[list[int]]):
    """Epoch plan shared by all ranks: pack (subclass), split or drop to the target count,
    shuffle the batch order; rank ``r`` takes batches ``r, r + R, r + 2R, ...``."""

    def __init__(self, lengths, shuffle, seed, drop_last, num_replicas, rank):
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if (self.lengths < 1).any():
            raise ValueError("lengths must be positive")
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.num_replicas, self.rank = _dist_defaults(num_replicas, rank)
        n = len(self.lengths)
        if n < self.num_replicas:
            raise ValueError(f"{n} utterances cannot be shared among {self.num_replicas} replicas")
        self.epoch = 0
        self._cache: tuple[int, list[list[int]], int] | None = None  # (epoch, batches, n_dropped)
        bound, replicas = self._max_batches(), self.num_replicas
        if drop_last:  # round down, but never drop a whole epoch
            self.total_batches = max(replicas, bound // replicas * replicas)
        else:
            self.total_batches = math.ceil(bound / replicas) * replicas
        # A split too small for the bound (a tiny validation set under DDP) gets as many
        # batches as it has utterances, rounded down to the ranks: the cheapest neighbouring
        # batches are merged, so a merged batch may exceed the cap. Counted, never hidden.
        self.cap_relaxed = self.total_batches > n
        if self.cap_relaxed:
            self.total_batches = n // replicas * replicas

    # subclass API
    def _pack(self, rng: np.random.Generator) -> list[list[int]]:
        raise NotImplementedError

    def _max_batches(self) -> int:
        """An upper bound on ``len(self._pack(rng))`` valid for every rng (every epoch)."""
        raise NotImplementedError

    @property
    def sampler(self):
        """Self: Lightning's ``_set_sampler_epoch`` looks for ``batch_sampler.sampler.set_epoch``."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self, epoch: int | None = None) -> list[list[int]]:
        """All ranks' batches of an epoch, in order; rank r iterates ``plan[r::num_replicas]``."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            rng = np.random.default_rng(self.seed + epoch)
            batches = self._pack(rng)
            if self.cap_relaxed:
                batches = _merge_to(batches, self.total_batches, self.lengths)
            batches = _split_to(batches, self.total_batches, self.lengths)
            if self.shuffle:
                batches = [batches[i] for i in rng.permutation(len(batches))]
            n_dropped = len(batches) - self.total_batches  # > 0 only with drop_last
            self._cache = (epoch, batches[: self.total_batches], n_dropped)
        return self._cache[1]

    def num_dropped_batches(self, epoch: int | None = None) -> int:
        """Batches dropped (drop_last=True) so the ranks get equal counts; they vary per epoch."""
        self.plan(epoch)
        return self._cache[2]

    def padding_fraction(self, epoch: int | None = None) -> float:
        """Padded share of ``sum(B * T_max)`` over the epoch's batches (all ranks)."""
        valid = padded = 0
        for b in self.plan(epoch):
            lens = self.lengths[b]
            valid += int(lens.sum())
            padded += len(b) * int(lens.max())
        return 1.0 - valid / padded

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.plan()[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return self.total_batches // self.num_replicas


def _split_to(batches: list[list[int]], target: int, lengths: np.ndarray) -> list[list[int]]:
    """Split the largest multi-item batches in two (short half / long half) until ``target``.

    A half never exceeds the cap its parent respected: fewer items, no longer maximum.
    """
    heap = [(-len(by_length), i) for i, by_length in enumerate(batches) if len(by_length) > 1]
    heapq.heapify(heap)
    while len(batches) < target:
        _, i = heapq.heappop(heap)  # non-empty: the caller checked target <= number of items
        by_length = sorted(batches[i], key=lambda j: lengths[j])
        batches[i], new = by_length[: len(by_length) // 2], by_length[len(by_length) // 2 :]
        batches.append(new)
        for j in (i, len(batches) - 1):
            if len(batches[j]) > 1:
                heapq.heappush(heap, (-len(batches[j]), j))
    return batches


def _merge_to(batches: list[list[int]], target: int, lengths: np.ndarray) -> list[list[int]]:
    """Merge neighbouring batches (ordered by their longest item) whose union pads least,
    until at most ``target`` remain. Only for splits with fewer utterances than the bound."""
    batches = sorted(batches, key=lambda b: int(lengths[b].max()))
    while len(batches) > target:
        cost = [(len(a) + len(b)) * int(lengths[a + b].max()) for a, b in zip(batches, batches[1:])]
        i = int(np.argmin(cost))
        batches[i : i + 2] = [batches[i] + batches[i + 1]]
    return batches


class BucketBatchSampler(_PlannedBatchSampler):
    """Length-bucketed batches capped by padded frames: ``len(batch) * max_len <= max_frames_per_batch``.

    Bucket edges (``bucket_edges``, inclusive upper lengths) give each of ``num_buckets``
    buckets about equal total frames. Each epoch, a bucket's utterances (shuffled, or sorted
    when ``shuffle=False``) are packed greedily under the cap; an utterance longer than the cap
    forms a batch of one (there are ``num_oversize_batches`` such batches every epoch).

    Equal counts: greedy packing never closes a batch of a bucket with fewer than
    ``cap // (bucket's longest)`` items unless it is the bucket's last, which bounds the
    count in every epoch; each epoch splits its largest batches until it reaches that bound,
    rounded up to a multiple of ``num_replicas``. So ``len`` is epoch-invariant, ranks get
    equal counts, and every utterance is used exactly once per epoch across the ranks. With
    ``drop_last=True`` the bound is rounded down instead and an epoch's surplus batches are
    dropped (``num_dropped_batches(epoch)``). The same seed + epoch gives the same plan on
    every rank.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames_per_batch: int,
        num_buckets: int = NUM_BUCKETS,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
        self.max_frames_per_batch = max_frames_per_batch
        self.oversize = np.flatnonzero(lens > max_frames_per_batch)
        self.num_oversize_batches = len(self.oversize)
        # Edges at the quantiles of the cumulative frame count (lhotse's equal-duration buckets).
        ordered = np.sort(lens)
        cum = np.cumsum(ordered)
        at_quantiles = np.searchsorted(cum, cum[-1] * np.arange(1, num_buckets) / num_buckets) if len(ordered) else []
        self.bucket_edges = np.unique(ordered[at_quantiles]) if len(ordered) else ordered
        bucket = np.searchsorted(self.bucket_edges, lens, side="left")
        fits = lens <= max_frames_per_batch
        self.buckets = [np.flatnonzero((bucket == k) & fits) for k in range(len(self.bucket_edges) + 1)]
        self.buckets = [b for b in self.buckets if len(b)]
        super().__init__(lens, shuffle, seed, drop_last, num_replicas, rank)

    @property
    def same_batches_every_epoch(self) -> bool:
        """True when every bucket packs into a single batch under the cap: then each epoch holds
        the same batches, only their order shuffled. A small corpus under many buckets does this
        (EmoDB's 428 training utterances under the default 40 buckets and 8000 frames: 40
        batches, the same ones every epoch); fewer buckets or a lower cap let them vary."""
        return all(len(b) * int(self.lengths[b].max()) <= self.max_frames_per_batch for b in self.buckets)

    def _max_batches(self) -> int:
        cap = self.max_frames_per_batch
        per_bucket = (math.ceil(len(b) / (cap // int(self.lengths[b].max()))) for b in self.buckets)
        return sum(per_bucket) + self.num_oversize_batches

    def _pack(self, rng: np.random.Generator) -> list[list[int]]:
        batches = [[int(i)] for i in self.oversize]
        for items in self.buckets:
            items = rng.permutation(items) if self.shuffle else items[np.argsort(self.lengths[items], kind="stable")]
            cur, cur_max = [], 0
            for i in items.tolist():
                new_max = max(cur_max, int(self.lengths[i]))
                if cur and (len(cur) + 1) * new_max > self.max_frames_per_batch:
                    batches.append(cur)
                    cur, new_max = [], int(self.lengths[i])
                cur.append(i)
                cur_max = new_max
            if cur:
                batches.append(cur)
        return batches


class RandomBatchSampler(_PlannedBatchSampler):
    """Baseline: shuffled fixed-size batches, no bucketing, no cap; same DDP / padding API."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        # Private on purpose: a public `batch_size` makes Lightning try to re-instantiate us.
        self._batch_size = batch_size
        super().__init__(lengths, shuffle, seed, drop_last, num_replicas, rank)

    def _max_batches(self) -> int:
        return math.ceil(len(self.lengths) / self._batch_size)

    def _pack(self, rng: np.random.Generator) -> list[list[int]]:
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        return [c.tolist() for c in np.array_split(order, range(self._batch_size, len(order), self._batch_size))]
