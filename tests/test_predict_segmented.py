"""`predict` with a segmented baseline checkpoint answers as the baseline was tested: the
file cut into segments exactly as in training, the segments' posteriors averaged."""

import json

import numpy as np
import pytest
import soundfile as sf

from ser_fcn.cli import main, run_cli
from ser_fcn.training.forward import posteriors
from ser_fcn.inference.predict import Predictor

from helpers import fit_args


@pytest.fixture(scope="module")
def segmented(demo_corpus, tmp_path_factory):
    """A 1-batch fit of the AlexNet baseline on 3 s segments (float32 cache, so `predict`'s
    spectrogram is the dataloader's)."""
    run_dir = tmp_path_factory.mktemp("runs") / "seg"
    cli = run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--trainer.max_epochs", "1",
                                    "--trainer.limit_train_batches", "1", "--data.cache_dtype", "float32",
                                    "--test_after_fit", "false", "--trainer.logger", "false",
                                    config="alexnet_random.yaml")])
    return cli, next((run_dir / "checkpoints").glob("best-*.ckpt"))


def test_a_file_is_answered_as_the_test_loader_scores_its_segments(segmented):
    cli, ckpt = segmented
    dm = cli.datamodule
    ds = dm.datasets["test"]
    predictor = Predictor(ckpt)
    assert predictor.segment_frames == dm.hparams.segment_frames
    loader = posteriors(predictor.module, dm.test_dataloader())
    lengths = [stop - start for *_, start, stop in ds.items]
    assert max(lengths) == dm.hparams.segment_frames and len(ds.items) > len(ds.indices)  # several segments each
    for u, row in enumerate(ds.indices[:6]):
        one = predictor.analyse_file(dm.rows[row].path).prediction
        probs = np.array([one.probabilities[c] for c in predictor.class_names])
        np.testing.assert_allclose(probs, loader[u][0], atol=1e-5)


def test_predict_a_folder_with_a_short_and_an_unreadable_file(segmented, tmp_path, capsys):
    cli, ckpt = segmented
    dm = cli.datamodule
    wave, sr = sf.read(dm.rows[dm.datasets["test"].indices[0]].path, dtype="float32")
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a_whole.wav", wave, sr)
    sf.write(folder / "b_300ms.wav", wave[: int(0.3 * sr)], sr)  # one segment, mostly padding
    (folder / "c_garbage.wav").write_bytes(b"not audio " * 40)
    out = tmp_path / "preds.jsonl"
    with pytest.raises(SystemExit) as e:
        main(["predict", "--ckpt", str(ckpt), "--out", str(out), str(folder)])
    assert e.value.code == 1
    assert "3 files, 2 predicted, 1 failed" in capsys.readouterr().out
    recs = {r["path"].split("/")[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert recs["c_garbage.wav"]["error"] and recs["c_garbage.wav"]["probabilities"] is None
    for name in ("a_whole.wav", "b_300ms.wav"):
        assert recs[name]["error"] is None and sum(recs[name]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert recs["b_300ms.wav"]["duration_s"] == pytest.approx(0.3)
