"""`predict`, `figure4` and the W&B attention images, on a tiny model fitted to the demo corpus."""

import json
import struct

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from ser_fcn.cli import SERCLI, main, run_cli
from ser_fcn.data.collate import pad_collate
from ser_fcn.models import AlexNetFCN, FCNAttention
from ser_fcn.models.receptive_field import cell_index, encoder_grid, upsample_attention
from ser_fcn.study.figure4 import make_figure4
from ser_fcn.training.forward import posteriors
from ser_fcn.inference.predict import FLAG_SHORT, FLAG_SILENT, Predictor
from ser_fcn.training.module import SERModule

from test_training import tiny_args  # tests/ is on sys.path (pytest's rootdir-relative import)


@pytest.fixture(scope="module")
def trained(demo_corpus, tmp_path_factory):
    """A 1-epoch fit. float32 feature cache: the dataloader sees exactly the spectrogram
    `predict` computes from the wav, so the two paths can be compared tightly."""
    run_dir = tmp_path_factory.mktemp("runs") / "fit"
    cli = run_cli(["fit", *tiny_args(demo_corpus.root, run_dir, "--data.cache_dtype", "float32",
                                     "--trainer.limit_train_batches", "2", "--test_after_fit", "false")])
    ckpt = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    return cli, run_dir, ckpt


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _test_wavs(cli):
    dm = cli.datamodule
    ds = dm.datasets["test"]
    return dm, ds, [dm.rows[i].path for i in ds.indices]


def test_the_checkpoint_alone_rebuilds_the_model(trained):
    cli, _, ckpt = trained
    module = SERModule.load_from_checkpoint(ckpt, map_location="cpu").eval()  # no net passed
    assert isinstance(module.net, FCNAttention) and module.net.head.lam == 0.3
    net = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]["net"]
    assert net["init_args"]["weights"] is None  # the trained ones are in the state dict
    x, n = torch.randn(2, 1, 200, 150), torch.tensor([150, 90])
    ref = cli.model.eval()
    with torch.no_grad():
        assert torch.allclose(module(x, n)[0], ref(x, n)[0], atol=1e-6)
    assert torch.equal(module.feature_mean, ref.feature_mean)


def test_lightning_predict_is_replaced_by_ours(capsys):
    assert "predict" not in SERCLI.subcommands() and "fit" in SERCLI.subcommands()
    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0 and "FILE_OR_DIR" in capsys.readouterr().out


def test_predict_a_folder_of_awkward_files(trained, tmp_path, capsys):
    cli, _, ckpt = trained
    _, _, wavs = _test_wavs(cli)
    wave, sr = sf.read(wavs[0], dtype="float32")
    assert sr == 16000
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a_16k.wav", wave, 16000)
    w44 = AF.resample(torch.from_numpy(wave), 16000, 44100).numpy()
    sf.write(folder / "sub" / "b_44k_stereo.wav", np.stack([w44, w44], 1), 44100)
    sf.write(folder / "c_8k.wav", AF.resample(torch.from_numpy(wave), 16000, 8000).numpy(), 8000)
    sf.write(folder / "d_silent.wav", np.zeros(32000, np.float32), 16000)
    (folder / "e_garbage.wav").write_bytes(b"not audio at all " * 50)
    sf.write(folder / "f_20ms.wav", wave[:320], 16000)  # < one 40 ms window
    sf.write(folder / "g_400ms.wav", wave[8000:14400], 16000)  # 37 frames < min_frames 63
    (folder / "notes.txt").write_text("not audio, not looked at")
    out, figs = tmp_path / "preds.jsonl", tmp_path / "figs"

    with pytest.raises(SystemExit) as e:
        main(["predict", "--ckpt", str(ckpt), "--out", str(out), "--figures", str(figs), str(folder)])
    assert e.value.code == 1  # some files failed
    stdout = capsys.readouterr().out
    assert "7 files, 5 predicted, 2 failed" in stdout

    recs = {r["path"].split("/")[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(recs) == ["a_16k.wav", "b_44k_stereo.wav", "c_8k.wav", "d_silent.wav", "e_garbage.wav", "f_20ms.wav", "g_400ms.wav"]
    assert "not a readable audio file" in recs["e_garbage.wav"]["error"]
    assert "shorter than one 40 ms analysis window" in recs["f_20ms.wav"]["error"]
    for name in ("e_garbage.wav", "f_20ms.wav"):
        assert recs[name]["probabilities"] is None and f"ERROR: {recs[name]['error']}" in stdout
    ok = {k: r for k, r in recs.items() if r["error"] is None}
    for r in ok.values():
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert list(r["probabilities"]) == ["neu", "hap", "sad", "ang"]
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert ok["d_silent.wav"]["flags"] == [FLAG_SILENT]
    assert ok["g_400ms.wav"]["flags"] == [FLAG_SHORT] and ok["g_400ms.wav"]["duration_s"] == pytest.approx(0.4)
    assert ok["a_16k.wav"]["flags"] == [] and ok["b_44k_stereo.wav"]["duration_s"] == pytest.approx(len(wave) / 16000, abs=1e-3)
    # the same audio at 44.1 kHz stereo (and 8 kHz: the model sees 0-4 kHz only) answers alike
    p16 = np.array(list(ok["a_16k.wav"]["probabilities"].values()))
    for other in ("b_44k_stereo.wav", "c_8k.wav"):
        assert np.abs(np.array(list(ok[other]["probabilities"].values())) - p16).max() < 0.02, other

    pngs = sorted(p.name for p in figs.glob("*.png"))
    assert pngs == ["a_16k.png", "b_44k_stereo.png", "c_8k.png", "d_silent.png", "g_400ms.png"]
    w, h = _png_size(figs / "a_16k.png")
    assert 400 < w < 5000 and 300 < h < 1500


def test_predicting_a_file_equals_the_test_dataloader(trained):
    """One file at a time, the test dataloader, and all test utterances in one padded batch
    give the same posteriors."""
    cli, _, ckpt = trained
    dm, ds, wavs = _test_wavs(cli)
    predictor = Predictor(ckpt)
    loader = posteriors(predictor.module, dm.test_dataloader())
    one_batch = pad_collate([ds[i] for i in range(len(ds))])
    assert (one_batch["lengths"] < one_batch["x"].shape[-1]).sum() == len(ds) - 1  # all but the longest padded
    padded = posteriors(predictor.module, [one_batch])
    for u, wav in enumerate(wavs):
        one = predictor.analyse_file(wav).prediction
        probs = np.array([one.probabilities[c] for c in predictor.class_names])
        np.testing.assert_allclose(probs, loader[u][0], atol=1e-5)
        np.testing.assert_allclose(probs, padded[u][0], atol=1e-5)


def test_attention_upsampling_is_aligned_and_keeps_the_mass():
    grid = encoder_grid(AlexNetFCN())
    assert (grid.jump_t, grid.centre_t, grid.jump_f, grid.centre_f) == (32, 31, 32, 31)
    # the map covers the utterance's frames only; density=True keeps the attention's mass
    n_frames, width = 300, 420
    t_valid = int(AlexNetFCN().output_lengths(torch.tensor([n_frames]))[0])
    alpha = torch.rand(5 * t_valid).softmax(0).view(5, t_valid)
    up = upsample_attention(alpha, 200, n_frames, grid, width=width)
    assert up.shape == (200, width) and (up[:, n_frames:] == 0).all() and (up[:, :n_frames] > 0).all()
    assert upsample_attention(alpha, 200, n_frames, grid, density=True).sum() == pytest.approx(1.0)
    # one hot cell lands where the encoder cell sits: frames/bins nearest its receptive-field centre
    hot = torch.zeros(5, t_valid)
    hot[2, 3] = 1
    up = upsample_attention(hot, 200, n_frames, grid)
    bins, frames = np.nonzero(up)
    assert (bins.min(), bins.max(), frames.min(), frames.max()) == (79, 110, 111, 142)  # 32 x 32 around (95, 127)
    # and that is where the encoder looks: a blob at a cell's centre changes that cell the most
    torch.manual_seed(0)
    enc = AlexNetFCN().eval()
    x = torch.randn(1, 1, 200, n_frames) * 0.1
    with torch.no_grad():
        base = enc(x)[0]
        for k0, j0 in [(95, 127), (31, 31), (159, 31 + 32 * 7)]:
            y = x.clone()
            y[0, 0, k0 - 1 : k0 + 2, j0 - 1 : j0 + 2] += 5
            change = (enc(y)[0] - base).abs().sum(1)[0]
            f, t = divmod(int(change.argmax()), change.shape[1])
            assert (f, t) == (cell_index(200, 5, 32, 31)[k0], cell_index(n_frames, t_valid, 32, 31)[j0])


def test_figure4_draws_one_test_utterance_per_class(trained, tmp_path, monkeypatch, capsys):
    _, _, ckpt = trained
    out = make_figure4(ckpt, tmp_path / "results" / "figure4.png")
    w, h = _png_size(out)
    assert 1200 < w < 4000 and 400 < h < 1500 and out.stat().st_size > 20_000
    monkeypatch.chdir(tmp_path)  # no runs/demo here
    with pytest.raises(SystemExit) as e:
        main(["figure4"])
    assert "run `make demo` first" in str(e.value)


def test_wandb_gets_the_attention_images_every_epoch(trained):
    cli, run_dir, _ = trained
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    images = list((offline / "files" / "media" / "images" / "val").glob("attention_*.png"))
    assert len(images) == cli.trainer.max_epochs == 1
    w, h = _png_size(images[0])
    assert w > 1000 and h > 400
