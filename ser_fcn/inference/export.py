"""`python -m ser_fcn export --ckpt C --format onnx|torchscript --out F`

Writes the trained model as one file that runs without this package, Lightning or (ONNX)
PyTorch. Input: the log spectrogram, not the waveform: the STFT is left out so that the file
runs the same in every runtime (a user computes the spectrogram with numpy: docs/inference.md).

    inputs  spectrogram  float32 (batch, 1, n_bins, frames), ln |STFT| (or ln of its mel-filtered
                         power) as ser_fcn.data.features.log_spectrogram computes it, zero beyond lengths
            lengths      int64 (batch,)  valid frames of each row
    output  probabilities float32 (batch, classes)

batch and frames are dynamic; frames >= the encoder's `min_frames` (AlexNet: 63 frames,
0.66 s); shorter rows are fine inside a longer batch (lengths). The per-bin normalisation of
the training set is inside the file.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

from ..data.features import SpectrogramConfig
from ..data.speaker_norm import STD_FLOOR
from ..models.alexnet_fcn import LocalResponseNorm
from ..utils import atomic
from .checkpoint import load_checkpoint
from ..training.module import SERModule

FORMATS = ("onnx", "torchscript")
MAX_FRAMES = 360_000  # largest time axis the ONNX graph declares: one hour at 10 ms


class ExportedModel(nn.Module):
    """spectrogram, lengths -> class probabilities (the checkpoint's normalisation + net)."""

    def __init__(self, module: SERModule):
        super().__init__()
        self.net = _plain_lrn(copy.deepcopy(module.net)).eval()
        self.register_buffer("feature_mean", module.feature_mean.detach().clone())
        self.register_buffer("feature_std", module.feature_std.detach().clone())

    def forward(self, spectrogram: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits, _ = self.net(SERModule.normalize(self, spectrogram, lengths), lengths)
        return logits.softmax(-1)


def _plain_lrn(net: nn.Module) -> nn.Module:
    """Our LRN (hand-written backward, a Python autograd Function tracing cannot record) ->
    torch's nn.LocalResponseNorm, the same formula and arguments."""
    for name, child in net.named_children():
        if isinstance(child, LocalResponseNorm):
            setattr(net, name, nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k))
        else:
            _plain_lrn(child)
    return net


def example_inputs(n_bins: int, frames: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 1, n_bins, frames), torch.tensor([frames, frames // 2])


def export(ckpt: str | Path, fmt: str, out: str | Path) -> dict:
    """Write the file; returns what a user needs to feed it (also printed by `main`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    module, cfg, dm_hp = load_checkpoint(ckpt)
    model = ExportedModel(module).eval()
    min_frames = int(getattr(module.net, "min_frames", 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    args = example_inputs(cfg.n_bins)
    names = {"input_names": ["spectrogram", "lengths"], "output_names": ["probabilities"]}
    if fmt == "onnx" and getattr(module.net, "recurrent", None) is not None:
        # models/recurrent.py's LSTMs: torch.export (torch 2.11) fails on them with a dynamic time
        # axis; the TorchScript-based exporter does not, and its file matches the model (tests/test_export.py)
        torch.onnx.export(model, args, str(out), dynamo=False, verbose=False, **names,
                          dynamic_axes={"spectrogram": {0: "batch", 3: "frames"}, "lengths": {0: "batch"}})
    elif fmt == "onnx":
        batch = torch.export.Dim("batch", min=1, max=4096)
        frames = torch.export.Dim("frames", min=min_frames, max=MAX_FRAMES)
        torch.onnx.export(model, args, str(out), dynamo=True, verbose=False, external_data=False, **names,
                          dynamic_shapes={"spectrogram": {0: batch, 3: frames}, "lengths": {0: batch}})
    else:
        with torch.no_grad():
            torch.jit.trace(model, args, check_trace=False).save(str(out))
    return {"file": str(out), "format": fmt, "classes": list(module.class_names), "min_frames": min_frames,
            "spectrogram": spectrogram_settings(cfg),
            # --data.speaker_norm: standardise each bin of the log spectrogram with its speaker's mean and
            # std (of one file: its own) before the model, std floored at std_floor (data/speaker_norm.py)
            "speaker_norm": {"std_floor": STD_FLOOR} if dm_hp.get("speaker_norm") else None}


def spectrogram_settings(cfg: SpectrogramConfig) -> dict:
    """What the sidecar tells a user to compute the input with (docs/inference.md's numpy recipe)."""
    return {"sample_rate": cfg.sample_rate, "win_length": cfg.win_length, "hop_length": cfg.hop_length,
            "n_fft": cfg.n_fft, "n_bins": cfg.n_bins, "window": "hamming", "eps": cfg.eps,
            # --data.mel: (n_fft // 2 + 1) x n_bins filters applied to |STFT|^2; None: the lowest bins of |STFT|
            "mel_filters": cfg.mel_filters().tolist() if cfg.mel else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_fcn export",
                                description="the trained model as an ONNX or TorchScript file (input: log spectrogram + lengths)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint of `python -m ser_fcn fit`")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="file to write (e.g. model.onnx, model.pt)")
    args = parser.parse_args(argv)
    try:
        info = export(args.ckpt, args.format, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    except ImportError as err:
        sys.exit(f"error: {err}. ONNX export needs `pip install 'ser_fcn[export]'` (onnx, onnxscript, onnxruntime)")
    sidecar = Path(args.out).with_suffix(".json")
    atomic.write_json(sidecar, info, indent=1)
    print(f"wrote {args.out} ({args.format}) and {sidecar} (classes and spectrogram settings)")
    print(f"inputs : spectrogram float32 (batch, 1, {info['spectrogram']['n_bins']}, frames >= {info['min_frames']}), "
          "lengths int64 (batch,)")
    print(f"output : probabilities float32 (batch, {len(info['classes'])}) over {info['classes']}")
    if args.format == "onnx":
        print(f"run    : onnxruntime.InferenceSession('{args.out}').run(None, {{'spectrogram': x, 'lengths': n}})[0]")
    else:
        print(f"run    : torch.jit.load('{args.out}')(x, n)")
    print("docs/inference.md, section \"Export (ONNX / TorchScript)\": running it on a wav with numpy + soundfile + onnxruntime")
