"""`export`: ONNX (onnxruntime) and TorchScript files against the PyTorch model, and the
docs/inference.md's numpy-only recipe against the package's spectrogram and prediction."""

import json
import re

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch

from ser_fcn.cli import main
from ser_fcn.data.features import log_spectrogram
from ser_fcn.inference.predict import Predictor

from deploy_helpers import deltas_recurrent_checkpoint, tiny_checkpoint
from helpers import REPO

PARITY = 1e-4  # largest |probability difference| allowed against the PyTorch model


@pytest.fixture(scope="module")
def exported(demo_corpus, tmp_path_factory):
    ckpt = tiny_checkpoint(demo_corpus, tmp_path_factory)[0]
    folder = tmp_path_factory.mktemp("export")
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        main(["export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(folder / name)])
    return ckpt, folder


def _batches(min_frames, n_bins, seed=0):
    """Batches of lengths from the shortest allowed to 30 s, rows of one batch of mixed lengths."""
    g = torch.Generator().manual_seed(seed)
    for longest in (min_frames, min_frames + 1, 97, 300, 1234, 3000):  # 3000 frames = 30 s
        lengths = torch.tensor([longest, max(1, longest // 3), min_frames, longest - 1][: 3 if longest > min_frames else 1])
        x = torch.randn(len(lengths), 1, n_bins, longest, generator=g) * 2 - 4
        x = x * (torch.arange(longest) < lengths[:, None])[:, None, None, :]  # zero beyond lengths
        yield x, lengths


def _worst_differences(ckpt, folder) -> dict[str, float]:
    """Largest |probability difference| of the folder's ONNX and TorchScript files against the
    checkpoint's PyTorch model, over _batches."""
    p = Predictor(ckpt)
    info = json.loads((folder / "model.json").read_text())
    assert sorted(f.name for f in folder.iterdir()) == ["model.json", "model.onnx", "model.pt"]  # one file each, no external data
    assert info["classes"] == p.class_names and info["min_frames"] == p.min_frames
    session = ort.InferenceSession(str(folder / "model.onnx"))
    scripted = torch.jit.load(str(folder / "model.pt"))
    worst = {"onnx": 0.0, "torchscript": 0.0}
    for x, n in _batches(p.min_frames, p.cfg.n_bins):
        with torch.inference_mode():
            ref = p.module(x, n)[0].softmax(-1).numpy()
            ts = scripted(x, n).numpy()
        ox = session.run(None, {"spectrogram": x.numpy(), "lengths": n.numpy()})[0]
        assert ox.shape == ts.shape == ref.shape
        worst["onnx"] = max(worst["onnx"], float(np.abs(ox - ref).max()))
        worst["torchscript"] = max(worst["torchscript"], float(np.abs(ts - ref).max()))
    print(f"export parity, max |dp| vs PyTorch: {worst}")
    return worst


def test_onnx_and_torchscript_match_pytorch(exported):
    assert max(_worst_differences(*exported).values()) <= PARITY


def test_a_recurrent_model_exports_to_both_formats_and_they_match_pytorch(demo_corpus, tmp_path_factory, tmp_path):
    """A model with deltas and `--model.net.init_args.recurrent true` (models/recurrent.py's
    LSTMs, which torch.export cannot give a dynamic time axis): its ONNX file comes from the
    TorchScript-based exporter, and both files give the model's answer at every length of _batches."""
    ckpt = deltas_recurrent_checkpoint(demo_corpus, tmp_path_factory)
    assert Predictor(ckpt).module.net.recurrent is not None
    folder = tmp_path / "export"
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        main(["export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(folder / name)])
    assert max(_worst_differences(ckpt, folder).values()) <= PARITY


def _readme_recipe() -> str:
    text = (REPO / "docs" / "inference.md").read_text()
    m = re.search(r"<!-- export-recipe -->\s*```python\n(.*?)```", text, re.S)
    assert m, "docs/inference.md lost its export recipe"
    return m.group(1)


def test_the_readme_recipe_runs_without_the_package(exported, demo_corpus, tmp_path):
    """The recipe of docs/inference.md (numpy + soundfile + onnxruntime) on a 16 kHz demo wav give the
    package's spectrogram and its prediction."""
    ckpt, folder = exported
    p = Predictor(ckpt)
    utt = demo_corpus.utterances[3]["path"]
    wave, _ = sf.read(utt, dtype="float32")
    code = _readme_recipe().replace("model.onnx", str(folder / "model.onnx")) \
                           .replace("model.json", str(folder / "model.json")).replace("speech.wav", str(utt))
    scope: dict = {}
    exec(compile(code, "docs/inference.md recipe", "exec"), scope)
    ours = log_spectrogram(torch.from_numpy(wave), p.cfg).numpy()
    assert scope["spec"].shape == ours.shape
    assert np.abs(scope["spec"] - ours).max() <= 1e-3 * max(1.0, np.abs(ours).max())
    whole = p.analyse_file(utt).prediction.probabilities
    assert np.allclose(scope["probs"][0], [whole[c] for c in p.class_names], atol=PARITY)
    assert scope["label"] == p.analyse_file(utt).prediction.label


def test_export_refuses_an_unknown_format_and_a_missing_checkpoint(tmp_path, exported):
    with pytest.raises(SystemExit):
        main(["export", "--ckpt", str(exported[0]), "--format", "tflite", "--out", str(tmp_path / "m")])
    with pytest.raises(SystemExit, match="not found"):
        main(["export", "--ckpt", str(tmp_path / "none.ckpt"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])


def test_a_log_mel_model_predicts_draws_and_exports_with_its_own_input(demo_corpus, tmp_path):
    """`--data.mel true --data.n_bins 64`: the checkpoint brings its mel setting back (predict
    computes 64 mel bands, the figure is drawn on them), and the sidecar's filters make the numpy
    recipe of docs/inference.md compute the same input."""
    from helpers import fit_args

    from ser_fcn.cli import run_cli

    run = tmp_path / "run"
    run_cli(["fit", *fit_args(demo_corpus.root, run, "--data.mel", "true", "--data.n_bins", "64",
                              "--data.cache_dir", str(tmp_path / "cache"), "--trainer.max_epochs", "1",
                              "--trainer.limit_train_batches", "2", "--trainer.logger", "false")])
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    p = Predictor(ckpt)
    assert p.cfg.mel and p.cfg.n_bins == 64
    utt = demo_corpus.utterances[3]["path"]
    analysis = p.analyse_file(utt)
    assert analysis.spec.shape[0] == 64 and set(analysis.prediction.probabilities) == set(p.class_names)
    p.figure(analysis)  # draws on the mel bands' centre frequencies
    main(["export", "--ckpt", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "model.pt")])
    info = json.loads((tmp_path / "model.json").read_text())["spectrogram"]
    assert np.array(info["mel_filters"]).shape == (p.cfg.n_fft // 2 + 1, 64)
    recipe = _readme_recipe().split("x = np.zeros")[0]  # the input lines, without the ONNX session
    scope: dict = {}
    exec(compile(recipe.replace("model.json", str(tmp_path / "model.json")).replace("speech.wav", str(utt)),
                 "docs/inference.md recipe", "exec"), scope)
    assert np.abs(scope["spec"] - analysis.spec).max() <= 1e-3 * max(1.0, np.abs(analysis.spec).max())
