"""data.speaker_norm: every bin standardised with its speaker's statistics, in training and in
every way a trained model is used (predict, --same-speaker, timeline, evaluate, export)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_fcn.cli import main, run_cli
from ser_fcn.data.datamodule import SERDataModule
from ser_fcn.data.features import log_spectrogram
from ser_fcn.data.speaker_norm import STD_FLOOR, own_statistics, speaker_statistics, standardise
from ser_fcn.inference.predict import Predictor, run
from ser_fcn.inference.timeline import encode_regions, speech_statistics, timeline
from ser_fcn.inference.vad import speech_regions

from helpers import fit_args


def test_statistics_are_the_mean_and_std_of_each_speakers_frames():
    rng = np.random.default_rng(0)
    items = [rng.normal(loc=i % 3, scale=1 + i % 2, size=(5, 20 + 7 * i)).astype(np.float32) for i in range(7)]
    speakers = ["a", "b", "c", "a", "b", "c", "a"]
    stats = speaker_statistics(speakers, lambda i: items[i])
    for spk in "abc":
        frames = np.concatenate([x for x, s in zip(items, speakers) if s == spk], axis=1).astype(np.float64)
        assert np.allclose(stats[spk][0], frames.mean(1), atol=1e-5)
        assert np.allclose(stats[spk][1], frames.std(1), atol=1e-5)
    with pytest.raises(ValueError, match="no frames"):
        speaker_statistics(["a"], lambda i: np.zeros((5, 0)))


def test_standardise_is_the_same_on_numpy_and_torch_and_a_constant_bin_stays_finite():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 30)).astype(np.float32)
    x[2] = -13.8  # a bin that never changes (log of the floor)
    stats = own_statistics(1, lambda _: x)
    assert stats[1][2] == pytest.approx(STD_FLOOR)
    a, b = standardise(x, stats), standardise(torch.from_numpy(x), stats)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
    assert np.allclose(a, b.numpy(), atol=1e-6) and np.isfinite(a).all()
    assert np.abs(a[2]).max() == 0.0  # centred, not blown up
    assert np.allclose(a[[0, 1, 3]].mean(1), 0, atol=1e-5) and np.allclose(a[[0, 1, 3]].std(1), 1, atol=1e-4)


def test_every_speaker_of_every_split_is_standardised_with_its_own_frames(demo_corpus, tmp_path):
    dm = SERDataModule(root=str(demo_corpus.root), speaker_norm=True, progress=False, cache_dir=str(tmp_path))
    plain = SERDataModule(root=str(demo_corpus.root), progress=False, cache_dir=str(tmp_path))
    for d in (dm, plain):
        d.prepare_data()
        d.setup()
    means = {}
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        for spk in {dm.rows[i].speaker for i in ds.indices}:
            frames = np.concatenate([dm.features(dm.rows[i]) for i in ds.indices if dm.rows[i].speaker == spk], axis=1)
            assert np.allclose(frames.mean(1), 0, atol=2e-3) and np.allclose(frames.std(1), 1, atol=2e-3), (split, spk)
            means[spk] = dm.speaker_stats[spk][0]
        item = ds[0]
        assert np.array_equal(item["features"].numpy(), dm.features(dm.rows[ds.indices[0]]))
    # the held-out speakers' statistics are their own, not the training speakers'
    test_spk, val_spk = dm.split.test_speaker, dm.split.val_speaker
    assert not np.allclose(means[test_spk], means[val_spk], atol=0.05)
    # the training statistics the model normalises with afterwards are those of standardised frames
    assert dm.feature_mean.abs().max() < 1e-3 and (dm.feature_std - 1).abs().max() < 1e-3
    assert not np.allclose(plain.feature_mean.numpy(), 0, atol=0.1)  # the plain input is not centred
    assert plain.speaker_stats is None


@pytest.fixture(scope="module")
def fitted(demo_corpus, tmp_path_factory):
    """(best checkpoint, run folder, data module) of a short speaker_norm fit of fold 1."""
    run_dir = tmp_path_factory.mktemp("speaker_norm_fit")
    run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--data.speaker_norm", "true", "--trainer.max_epochs", "1",
                              "--trainer.limit_train_batches", "3", "--trainer.logger", "false")])
    dm = SERDataModule(root=str(demo_corpus.root), speaker_norm=True, progress=False)
    dm.prepare_data()
    dm.setup()
    return next((run_dir / "checkpoints").glob("best-*.ckpt")), run_dir, dm


def test_predict_same_speaker_reproduces_the_test_of_the_run(fitted, capsys):
    """The test speaker's files given to `predict --same-speaker` are standardised with the
    statistics training used for that speaker: the run's test confusion matrix, file by file."""
    ckpt, run_dir, dm = fitted
    results = json.loads((run_dir / "results.json").read_text())
    rows = [dm.rows[i] for i in dm.split.test]
    preds = run(ckpt, [r.path for r in rows], same_speaker=True)
    classes = results["classes"]
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    by_path = {p.path: p.label for p in preds}
    for r in rows:
        confusion[classes.index(r.label), classes.index(by_path[str(r.path)])] += 1
    assert confusion.tolist() == results["confusion_matrix"]
    assert f"statistics of {len(rows)} of {len(rows)} files" in capsys.readouterr().out


def test_predict_of_a_speaker_norm_model_does_not_depend_on_the_recording_level(fitted, demo_corpus, tmp_path):
    """Each file stands for its speaker: its own statistics take out a gain (log |X| + log g),
    which a model without speaker_norm would see."""
    ckpt, _, _ = fitted
    wav = demo_corpus.utterances[5]["path"]
    wave, sr = sf.read(wav, dtype="float32")
    sf.write(tmp_path / "loud.wav", wave * 4.0, sr, subtype="FLOAT")
    p = Predictor(ckpt)
    quiet, loud = (p.analyse_file(f).prediction.probabilities for f in (wav, tmp_path / "loud.wav"))
    assert np.allclose([quiet[c] for c in p.class_names], [loud[c] for c in p.class_names], atol=1e-4)
    # and the model's input is the file's spectrogram standardised with its own statistics
    spec = log_spectrogram(torch.from_numpy(wave), p.cfg)
    x = p.model_input(spec)
    assert torch.allclose(x.mean(1), torch.zeros(1), atol=1e-4) and torch.allclose(x.std(1, unbiased=False), torch.ones(1), atol=1e-3)
    p.speaker_norm = False  # the same checkpoint fed the raw spectrogram answers otherwise
    assert not np.allclose(list(p.analyse_file(wav).prediction.probabilities.values()),
                           [quiet[c] for c in p.class_names], atol=1e-4)


def test_the_timeline_standardises_with_the_speech_of_the_file(fitted, demo_corpus, tmp_path):
    """Shared and exact windows see the same standardised input (their answers agree as they do
    without speaker_norm), and a gain leaves the timeline as it is."""
    ckpt, _, _ = fitted
    wave = np.concatenate([sf.read(demo_corpus.utterances[i]["path"], dtype="float32")[0] for i in (1, 2)]
                          + [np.zeros(16000, np.float32)])
    sf.write(tmp_path / "call.wav", wave, 16000, subtype="FLOAT")
    p = Predictor(ckpt)
    shared = p.analyse_timeline(tmp_path / "call.wav").prediction.timeline
    exact = p.analyse_timeline(tmp_path / "call.wav", exact=True).prediction.timeline
    speech = [s for s in shared if s["probabilities"]]
    assert speech and [s["label"] for s in speech] == [s["label"] for s in exact if s["probabilities"]]
    # the same speech regions (the VAD's edges move a little with the level) at 4x the level
    regions = speech_regions(torch.from_numpy(wave), 16000)
    probs = []
    for w in (wave, wave * 4.0):
        w = torch.from_numpy(w)
        stats = speech_statistics(w, p.cfg, regions)
        segs = timeline(p.module, w, p.cfg, p.class_names, regions=regions,
                        cells=encode_regions(p.module, w, p.cfg, regions, stats=stats), stats=stats)
        probs.append([list(s["probabilities"].values()) for s in segs if s["probabilities"]])
    assert probs[0] and np.allclose(probs[0], probs[1], atol=1e-4)


def test_evaluate_and_export_carry_the_standardisation(fitted, demo_corpus, tmp_path):
    ckpt, run_dir, _ = fitted
    results = json.loads((run_dir / "results.json").read_text())
    main(["evaluate", "--ckpt", str(ckpt), "--root", str(demo_corpus.root), "--out", str(tmp_path / "rep.json")])
    spk = json.loads((tmp_path / "rep.json").read_text())["per_speaker"][results["test_speaker"]]
    assert spk["confusion_matrix"] == results["confusion_matrix"]  # each speaker with its own statistics
    main(["export", "--ckpt", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "model.pt")])
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["speaker_norm"] == {"std_floor": STD_FLOOR}
    from test_export import _readme_recipe

    wav = demo_corpus.utterances[3]["path"]
    recipe = _readme_recipe().split("x = np.zeros")[0]  # the input lines, without the ONNX session
    scope: dict = {}
    exec(compile(recipe.replace("model.json", str(tmp_path / "model.json")).replace("speech.wav", str(wav)),
                 "docs/inference.md recipe", "exec"), scope)
    p = Predictor(ckpt)
    ours = p.model_input(log_spectrogram(torch.from_numpy(sf.read(wav, dtype="float32")[0]), p.cfg)).numpy()
    assert np.abs(scope["spec"] - ours).max() <= 2e-3 * max(1.0, np.abs(ours).max())
    model = torch.jit.load(str(tmp_path / "model.pt"))
    x = torch.from_numpy(scope["spec"].astype(np.float32))[None, None]
    with torch.no_grad():
        probs = model(x, torch.tensor([x.shape[-1]]))[0].numpy()
    expected = p.analyse_file(wav).prediction.probabilities
    assert np.allclose(probs, [expected[c] for c in p.class_names], atol=1e-3)
