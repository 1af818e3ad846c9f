"""SERDataModule on the demo corpus: folds, coverage, caps, masking, segments, errors."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from ser_fcn.data.datamodule import SERDataModule
from ser_fcn.corpora.folds import LeakageError
from ser_fcn.corpora.iemocap import read_iemocap
from ser_fcn.corpora.manifest import ManifestError, Utterance, write_manifest


def make_dm(root, **kw):
    kw.setdefault("max_frames_per_batch", 3000)
    dm = SERDataModule(root=str(root), progress=False, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm(demo_corpus):
    return make_dm(demo_corpus.root)


def test_every_training_utterance_once_per_epoch_within_the_cap(dm):
    loader = dm.train_dataloader()
    seen, epochs = [], []
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        ids = []
        for batch in loader:
            b, _, f, t = batch["x"].shape
            assert f == 200 and t == int(batch["lengths"].max())
            assert b == 1 or b * t <= 3000
            ids += batch["ids"]
        epochs.append(ids)
        seen.append(Counter(ids))
    expected = Counter(dm.datasets["train"].utterance_ids)
    assert seen[0] == seen[1] == expected and max(expected.values()) == 1
    assert epochs[0] != epochs[1]  # reshuffled with seed + epoch


def test_padding_is_zero_and_lengths_match_the_cache(dm):
    batch = next(iter(dm.val_dataloader()))
    for row, (utt, n) in enumerate(zip(batch["ids"], batch["lengths"].tolist())):
        path = next(r.path for r in dm.rows if r.utterance_id == utt)
        feats = torch.from_numpy(dm.cache.load(path).astype("float32"))
        assert feats.shape[1] == n
        assert torch.equal(batch["x"][row, 0, :, :n], feats)
        assert not batch["x"][row, 0, :, n:].any()


def test_splits_follow_the_fold_and_labels_are_indices(dm):
    split = dm.split
    for name in ("train", "val", "test"):
        speakers = {dm.rows[i].speaker for i in getattr(split, name)}
        assert (speakers == {split.val_speaker}) if name == "val" else True
    assert split.val_speaker == "1F" and split.test_speaker == "1M"
    batch = next(iter(dm.test_dataloader()))
    labels = [dm.classes[i] for i in batch["y"].tolist()]
    by_id = {r.utterance_id: r.label for r in dm.rows}
    assert labels == [by_id[u] for u in batch["ids"]]
    assert dm.num_classes == 4 and sum(dm.class_counts) == len(split.train)


def test_feature_statistics_are_those_of_the_training_frames(dm):
    frames = torch.cat([torch.from_numpy(dm.cache.load(dm.rows[i].path).astype("float64")) for i in dm.split.train], 1)
    assert torch.allclose(dm.feature_mean.double(), frames.mean(1), atol=1e-4)
    assert torch.allclose(dm.feature_std.double(), frames.std(1, unbiased=False), atol=1e-3)


def test_segmented_mode_covers_each_utterance_with_300_frame_segments(demo_corpus):
    seg = make_dm(demo_corpus.root, segmented=True)
    plain = make_dm(demo_corpus.root)
    ds = seg.datasets["test"]
    lengths = dict(enumerate(plain.datasets["test"].lengths))
    covered = Counter()
    for batch in seg.test_dataloader():
        assert batch["x"].shape[-1] == 300
        for u, n in zip(batch["utt_index"].tolist(), batch["lengths"].tolist()):
            assert n == min(lengths[u], 300)  # no segment is mostly padding
            covered[u] += n
    assert all(covered[u] >= n for u, n in lengths.items())  # the tail segment may overlap
    assert len(ds) == sum(-(-n // 300) for n in lengths.values())
    train = seg.datasets["train"]
    seg_labels = Counter(seg.rows[row].label for _, row, _, _ in train.items)
    assert seg.class_counts == [seg_labels[c] for c in seg.classes]  # weights from segments
    assert sum(seg.class_counts) == len(train) > len(seg.split.train)


def test_manifest_input_trains_like_the_root(demo_corpus, tmp_path):
    rows, _ = read_iemocap(demo_corpus.root, progress=False)
    manifest = write_manifest(rows, tmp_path / "m.csv")
    a = SERDataModule(manifest=str(manifest), progress=False)
    a.setup("fit")
    b = make_dm(demo_corpus.root)
    assert a.datasets["train"].utterance_ids == b.datasets["train"].utterance_ids
    assert torch.equal(a.feature_mean, b.feature_mean)


def test_a_relative_root_reads_the_same_utterances_as_the_absolute_one(demo_corpus, monkeypatch):
    """data.root relative to the working directory: the cached manifest (which takes relative
    paths relative to its own folder) must still point at the corpus's wavs."""
    monkeypatch.chdir(demo_corpus.root.parent)
    a = make_dm(Path(demo_corpus.root.name))
    b = make_dm(demo_corpus.root)
    assert a.datasets["train"].utterance_ids == b.datasets["train"].utterance_ids
    assert torch.equal(a.feature_mean, b.feature_mean)


def test_missing_data_is_an_error_never_a_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SERDataModule(root=str(tmp_path / "nowhere"), progress=False).prepare_data()
    with pytest.raises(ManifestError, match="absent.csv"):
        SERDataModule(manifest=str(tmp_path / "absent.csv"), progress=False).prepare_data()
    with pytest.raises(ValueError, match="not both"):
        SERDataModule(root="a", manifest="b")


def test_no_data_means_the_demo_corpus_and_says_so(caplog):
    dm = SERDataModule(demo_utterances_per_speaker=12, progress=False)
    dm.prepare_data()
    assert "SYNTHETIC DEMO CORPUS" in caplog.text
    assert dm.corpus_name.startswith("demo")


def test_leaky_manifest_is_refused(demo_corpus, tmp_path):
    rows, _ = read_iemocap(demo_corpus.root, progress=False)
    r = rows[0]
    leak = Utterance(r.utterance_id + "x", r.path, r.label, r.speaker, r.session % 5 + 1, True, r.duration_s)
    manifest = write_manifest(rows + [leak], tmp_path / "m.csv")
    with pytest.raises(LeakageError, match=r.speaker):
        SERDataModule(manifest=str(manifest), progress=False).setup("fit")


def test_a_file_changed_after_the_manifest_is_named(demo_corpus, demo_corpus_copy, tmp_path):
    rows, _ = read_iemocap(demo_corpus_copy, progress=False)
    manifest = write_manifest(rows, tmp_path / "m.csv")
    gone, cut = Path(rows[5].path), Path(rows[6].path)
    gone.unlink()
    with pytest.raises(ValueError, match=str(gone)):
        SERDataModule(manifest=str(manifest), cache_dir=str(tmp_path / "c"), progress=False).setup("fit")
    rows, _ = read_iemocap(demo_corpus_copy, progress=False)
    manifest = write_manifest(rows, tmp_path / "m2.csv")
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{cut}.*truncated"):
        SERDataModule(manifest=str(manifest), cache_dir=str(tmp_path / "c"), progress=False).setup("fit")
    dm = SERDataModule(manifest=str(manifest), cache_dir=str(tmp_path / "c"), skip_bad_audio=True, progress=False)
    dm.setup("fit")
    assert [e.path for e in dm.skipped] == [str(cut)]
    assert len(dm.rows) == len(rows) - 1


def test_skip_bad_audio_skips_and_counts_a_missing_file_like_an_empty_one(demo_corpus_copy, tmp_path, caplog):
    """A manifest row whose file is gone is one more unusable file: skipped and counted, not a stop."""
    rows, _ = read_iemocap(demo_corpus_copy, progress=False)
    manifest = write_manifest(rows, tmp_path / "m.csv")
    gone, empty = Path(rows[5].path), Path(rows[6].path)
    gone.unlink()
    empty.write_bytes(b"")
    dm = SERDataModule(manifest=str(manifest), cache_dir=str(tmp_path / "c"), skip_bad_audio=True, progress=False)
    with caplog.at_level("WARNING"):
        dm.prepare_data()
    assert "SKIPPED 2 unusable wav file(s)" in caplog.text and str(gone) in caplog.text
    dm.setup("fit")
    assert sorted((e.path, e.problem.split(" (")[0]) for e in dm.skipped) == sorted(
        [(str(gone), "file not found"), (str(empty), "empty file")])
    assert len(dm.rows) == len(rows) - 2
    kept = {r.utterance_id for r in dm.rows}
    assert rows[5].utterance_id not in kept and rows[6].utterance_id not in kept
