"""Invariants of the batch samplers (lhotse-style): coverage, caps, DDP, determinism, padding."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_fcn.data.sampler import BucketBatchSampler, RandomBatchSampler

lengths_st = st.lists(st.integers(1, 1500), min_size=1, max_size=150)
FAST = settings(max_examples=60, deadline=None)


def lognormal_lengths(n=2000, seed=0):
    """Long-tailed frame counts, roughly IEMOCAP-like (median 4 s at 100 frames/s)."""
    rng = np.random.default_rng(seed)
    return np.maximum(30, rng.lognormal(np.log(400), 0.7, n)).astype(int).tolist()


def make(kind, lengths, cap, **kw):
    if kind == "bucket":
        return BucketBatchSampler(lengths, cap, **kw)
    return RandomBatchSampler(lengths, batch_size=max(1, cap // 400), **kw)


def check_caps(sampler, batches, complete=True):
    """Multi-item batches respect the cap; each oversize utterance is alone. `batches`: all ranks'."""
    if not isinstance(sampler, BucketBatchSampler) or sampler.cap_relaxed:
        return
    lens = np.asarray(sampler.lengths)
    for b in batches:
        if len(b) > 1:
            assert len(b) * lens[b].max() <= sampler.max_frames_per_batch
    if not complete:  # drop_last may have dropped oversize singletons
        return
    singles_over = sum(len(b) == 1 and lens[b[0]] > sampler.max_frames_per_batch for b in batches)
    assert singles_over == (lens > sampler.max_frames_per_batch).sum() == sampler.num_oversize_batches


@pytest.mark.parametrize("kind", ["bucket", "random"])
@FAST
@given(lengths=lengths_st, cap=st.integers(1, 6000), buckets=st.integers(1, 12), epoch=st.integers(0, 5),
       shuffle=st.booleans())
def test_single_process_coverage_caps_len(kind, lengths, cap, buckets, epoch, shuffle):
    kw = dict(num_buckets=buckets) if kind == "bucket" else {}
    s = make(kind, lengths, cap, shuffle=shuffle, seed=3, num_replicas=1, rank=0, **kw)
    s.set_epoch(epoch)
    batches = list(s)
    assert len(batches) == len(s)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    check_caps(s, batches)
    s.set_epoch(epoch + 1)  # len is the same every epoch (Lightning reads it once)
    assert len(list(s)) == len(s)


@pytest.mark.parametrize("kind", ["bucket", "random"])
@FAST
@given(lengths=lengths_st, cap=st.integers(1, 6000), replicas=st.integers(2, 4), epoch=st.integers(0, 3),
       drop_last=st.booleans())
def test_ddp_disjoint_equal_and_covering(kind, lengths, cap, replicas, epoch, drop_last):
    n = len(lengths)
    try:
        ranks = [make(kind, lengths, cap, seed=1, drop_last=drop_last, num_replicas=replicas, rank=r)
                 for r in range(replicas)]
    except ValueError:
        assert n < replicas  # the only case where ranks cannot each get a distinct utterance
        return
    bound = make(kind, lengths, cap, num_replicas=1, rank=0).total_batches
    assert ranks[0].cap_relaxed == (not drop_last and -(-bound // replicas) * replicas > n)
    per_rank = []
    for s in ranks:
        s.set_epoch(epoch)
        per_rank.append(list(s))
        assert len(per_rank[-1]) == len(s) == len(ranks[0])
    check_caps(ranks[0], [b for batches in per_rank for b in batches], complete=not drop_last)
    assert all(s.plan() == ranks[0].plan() for s in ranks)  # one shared plan
    seen = [i for batches in per_rank for b in batches for i in b]
    assert len(seen) == len(set(seen))  # disjoint
    if not drop_last:
        assert sorted(seen) == list(range(n))
        assert ranks[0].num_dropped_batches() == 0
    n_batches = sum(map(len, per_rank))
    assert n_batches % replicas == 0 and n_batches == ranks[0].total_batches


def test_same_plan_whichever_rank_computes_first():
    lengths = lognormal_lengths(500)
    def run(order):
        out = {}
        for r in order:
            s = BucketBatchSampler(lengths, 8000, seed=7, num_replicas=3, rank=r)
            s.set_epoch(2)
            out[r] = list(s)
        return out
    assert run([0, 1, 2]) == run([2, 0, 1])


def test_determinism_and_epochs_differ():
    lengths = lognormal_lengths(500)
    a, b = BucketBatchSampler(lengths, 8000, seed=5), BucketBatchSampler(lengths, 8000, seed=5)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    other_seed = BucketBatchSampler(lengths, 8000, seed=6)
    other_seed.set_epoch(4)
    assert list(other_seed) != list(a)
    b.set_epoch(5)
    assert list(b) != list(a)


def test_too_few_utterances_for_replicas():
    with pytest.raises(ValueError, match="replicas"):
        BucketBatchSampler([100, 200], 1000, num_replicas=3, rank=0)
    # five oversize utterances = five batches of one: for 4 ranks to get equal counts, two
    # are merged (the cap gives way, and says so) ...
    ranks = [BucketBatchSampler([10] * 5, 5, num_replicas=4, rank=r) for r in range(4)]
    assert ranks[0].cap_relaxed and [len(list(s)) for s in ranks] == [1, 1, 1, 1]
    assert sorted(i for s in ranks for b in s for i in b) == [0, 1, 2, 3, 4]
    # ... or the surplus batch is dropped (and counted)
    ranks = [BucketBatchSampler([10] * 5, 5, drop_last=True, num_replicas=4, rank=r) for r in range(4)]
    assert [len(list(s)) for s in ranks] == [1, 1, 1, 1] and ranks[0].num_dropped_batches() == 1


def test_replicas_and_rank_default_from_torch_distributed(monkeypatch):
    import torch.distributed as dist

    assert (BucketBatchSampler([100] * 4, 1000).num_replicas, BucketBatchSampler([100] * 4, 1000).rank) == (1, 0)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    s = BucketBatchSampler([100] * 4, 1000)
    assert (s.num_replicas, s.rank) == (2, 1)


def test_bucketing_halves_padding_on_long_tailed_lengths():
    lengths = lognormal_lengths(2000, seed=0)
    bucket = BucketBatchSampler(lengths, max_frames_per_batch=12000, seed=0, num_replicas=1, rank=0)
    # baseline with the same number of batches per epoch
    rand = RandomBatchSampler(lengths, batch_size=round(len(lengths) / len(bucket)), seed=0, num_replicas=1, rank=0)
    pb, pr = bucket.padding_fraction(0), rand.padding_fraction(0)
    assert pb < 0.5 * pr, (pb, pr)


def test_lightning_calls_set_epoch_and_sees_every_utterance_each_epoch():
    import lightning as L
    from torch.utils.data import DataLoader, Dataset

    from ser_fcn.data.collate import pad_collate

    lengths = lognormal_lengths(60, seed=1)

    class Utts(Dataset):
        def __len__(self):
            return len(lengths)

        def __getitem__(self, i):
            return {"features": torch.ones(2, lengths[i]), "label": i % 2, "utt_index": i, "utterance_id": f"u{i}"}

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = {}

        def training_step(self, batch, _):
            self.seen.setdefault(self.current_epoch, []).extend(batch["utt_index"].tolist())
            return (self.w * batch["x"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    sampler = BucketBatchSampler(lengths, 3000, num_buckets=4, seed=0)
    loader = DataLoader(Utts(), batch_sampler=sampler, collate_fn=pad_collate)
    probe = Probe()
    L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, use_distributed_sampler=False).fit(probe, loader)
    assert sampler.epoch == 2
    for epoch in range(3):
        assert sorted(probe.seen[epoch]) == list(range(len(lengths)))
    assert probe.seen[0] != probe.seen[1]


def _batch_sets(sampler, epoch):
    return sorted(sorted(b) for b in sampler.plan(epoch))


@FAST
@given(lengths=lengths_st, cap=st.integers(200, 6000), buckets=st.integers(1, 60), seed=st.integers(0, 10))
def test_same_batches_every_epoch_means_what_it_says(lengths, cap, buckets, seed):
    """When the sampler says its buckets each pack into one batch, every epoch's batches are the
    same sets (only their order varies)."""
    s = BucketBatchSampler(lengths, cap, num_buckets=buckets, seed=seed)
    if s.same_batches_every_epoch:
        assert all(_batch_sets(s, e) == _batch_sets(s, 0) for e in range(1, 4))


def test_a_small_corpus_under_many_buckets_repeats_its_batches_and_fewer_buckets_vary_them():
    """EmoDB-sized: 428 utterances of 1.2-6.8 s. Under the default 40 buckets and 8000 frames
    every bucket is one batch; 8 buckets under 4000 frames give batches that vary."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(122, 679, 428).tolist()
    many = BucketBatchSampler(lengths, 8000, num_buckets=40, seed=0)
    assert many.same_batches_every_epoch and _batch_sets(many, 0) == _batch_sets(many, 1)
    fewer = BucketBatchSampler(lengths, 4000, num_buckets=8, seed=0)
    assert not fewer.same_batches_every_epoch and _batch_sets(fewer, 0) != _batch_sets(fewer, 1)


def test_the_datamodule_warns_when_training_batches_never_vary(demo_corpus, caplog):
    import logging

    from ser_fcn.data.datamodule import SERDataModule

    def warned(**kw):
        dm = SERDataModule(root=str(demo_corpus.root), progress=False, **kw)
        dm.setup("fit")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            loader = dm.train_dataloader()
            dm.val_dataloader()
        repeats = loader.batch_sampler.same_batches_every_epoch and len(loader.batch_sampler.buckets) > 1
        hit = [r for r in caplog.records if "same batches" in r.getMessage()]
        assert len(hit) == int(repeats)  # the training split only, and only when it is so
        return repeats, hit

    repeats, hit = warned(num_buckets=40, max_frames_per_batch=100000)
    assert repeats and "data.num_buckets" in hit[0].getMessage() and "train" in hit[0].getMessage()
    repeats, _ = warned(num_buckets=2, max_frames_per_batch=2500)
    assert not repeats
