"""Figure 4 of the paper: log spectrograms (top) and their 2-D attention weights (bottom).

`python -m ser_fcn figure4 [--ckpt PATH] [--out results/figure4.png]` draws it for one
test utterance per emotion of a trained checkpoint; `AttentionImageLogger`
(reporting/attention_logger.py) and `python -m ser_fcn predict --figures DIR` draw the same panel.

Upsampling the attention map: nearest encoder cell by receptive-field centre. The
encoder output cell (f, t) is centred on input bin c_f + f * J_f and frame c_t + t * J_t,
where J is the encoder's total stride and c the centre of cell 0, both computed from its
conv/pool layers (AlexNet: J = 32, c = 31 on both axes). Each spectrogram frame (bin) takes
the weight of the valid cell whose centre is nearest, so the map is aligned with the
spectrogram; frames beyond the utterance stay 0. `density=True` divides each cell's weight
by the number of pixels it covers, so the map sums to 1 like the attention itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.attention import AttentionHead
from ..data.features import SpectrogramConfig
from ..data.segments import segment_spans
from ..training.checkpoint import DEMO_CKPT_GLOB, datamodule_from_hparams, load_checkpoint, newest_checkpoint
from ..training.metrics import average_posteriors

log = logging.getLogger(__name__)

DEFAULT_OUT = "results/figure4.png"


# --- the grid of the encoder's output cells ----------------------------------------------


@dataclass(frozen=True)
class CellGrid:
    """Where encoder output cells sit on the input: centre of cell k = centre + k * jump."""

    jump_f: float
    centre_f: float
    jump_t: float
    centre_t: float


def encoder_grid(encoder: nn.Module) -> CellGrid:
    """Total stride and centre of the first output cell, per axis, from the conv/pool layers
    of `encoder` in order (receptive-field arithmetic: centre += ((k - 1) / 2 - p) * jump)."""

    def axis(v, i):
        return v[i] if isinstance(v, (tuple, list)) else v

    out = []
    for i in (0, 1):  # (frequency, time) = the (H, W) of the conv layers
        jump, centre = 1.0, 0.0
        for m in encoder.modules():
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                k, s, p = axis(m.kernel_size, i), axis(m.stride, i), axis(m.padding, i)
                d = axis(getattr(m, "dilation", 1), i)
                centre += ((d * (k - 1)) / 2 - p) * jump
                jump *= s
        out += [jump, centre]
    return CellGrid(*out)


def cell_index(n: int, n_cells: int, jump: float, centre: float) -> np.ndarray:
    """For each of `n` input positions, the index of the output cell whose centre is nearest."""
    return np.clip(np.floor((np.arange(n) - centre) / jump + 0.5), 0, n_cells - 1).astype(int)


def upsample_attention(
    alpha: np.ndarray | torch.Tensor,
    n_bins: int,
    n_frames: int,
    grid: CellGrid,
    width: int | None = None,
    density: bool = False,
) -> np.ndarray:
    """`alpha` (F', T_valid') -> (n_bins, width or n_frames) on the spectrogram's grid.

    `alpha` holds the valid time steps only; `n_frames` are the utterance's valid frames.
    Frames n_frames .. width-1 (padding) are 0.
    """
    att = alpha.detach().cpu().numpy() if torch.is_tensor(alpha) else np.asarray(alpha)
    att = att.astype(np.float64)
    fi = cell_index(n_bins, att.shape[0], grid.jump_f, grid.centre_f)
    ti = cell_index(n_frames, att.shape[1], grid.jump_t, grid.centre_t)
    up = att[fi][:, ti]
    if density:
        pixels = np.bincount(fi, minlength=att.shape[0])[:, None] * np.bincount(ti, minlength=att.shape[1])[None, :]
        up = up / pixels[fi][:, ti]
    out = np.zeros((n_bins, width or n_frames))
    out[:, :n_frames] = up
    return out


# --- running the model on one utterance --------------------------------------------------


@torch.inference_mode()
def attention_of(module, spec: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """(class probabilities (C,), valid attention (F', T_valid') or None) of a (F, T) spectrogram."""
    x = spec.to(device=module.device, dtype=torch.float32)[None, None]
    lengths = torch.tensor([spec.shape[-1]], device=module.device)
    logits, att = module(x, lengths)
    probs = logits.float().softmax(-1)[0].cpu().numpy()
    if att is None:
        return probs, None
    valid = int(module.net.output_lengths(lengths.cpu())[0])
    return probs, att[0, :, :valid].float().cpu().numpy()


@torch.inference_mode()
def segmented_probs(module, spec: torch.Tensor, segment_frames: int) -> np.ndarray:
    """Class probabilities (C,) of a (F, T) spectrogram for a segmented baseline, as it was
    trained and tested: `segment_spans` segments, each zero-padded to `segment_frames`, their
    posteriors averaged."""
    spans = segment_spans(spec.shape[-1], segment_frames)
    x = spec.new_zeros(len(spans), 1, spec.shape[0], segment_frames, dtype=torch.float32)
    for i, (start, stop) in enumerate(spans):
        x[i, 0, :, : stop - start] = spec[:, start:stop]
    lengths = torch.tensor([stop - start for start, stop in spans])
    logits, _ = module(x.to(module.device), lengths.to(module.device))
    _, mean = average_posteriors(logits.float().cpu(), torch.zeros(len(spans), dtype=torch.long))
    return mean[0].numpy()


# --- drawing -------------------------------------------------------------------------------


@dataclass
class Panel:
    """One column of the figure: a (F, T) log spectrogram, its attention, a title."""

    spec: np.ndarray
    attention: np.ndarray | None  # (F', T_valid'), not upsampled
    title: str


def draw_panels(panels: list[Panel], cfg: SpectrogramConfig, grid: CellGrid, width_per_panel: float | None = None):
    """A matplotlib Figure (Agg canvas; no pyplot state): per panel, the spectrogram on
    top and the upsampled attention below, on the same axes (seconds, Hz)."""
    import librosa.display
    from matplotlib.figure import Figure

    n = len(panels)
    if width_per_panel is None:
        width_per_panel = 4.2
    fig = Figure(figsize=(width_per_panel * n, 6.4), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharex="col", sharey=True)
    for j, p in enumerate(panels):
        n_bins, n_frames = p.spec.shape
        # frame k is the window starting at k * hop: its centre is at k * hop + win / 2
        times = (np.arange(n_frames) * cfg.hop_length + cfg.win_length / 2) / cfg.sample_rate
        freqs = np.arange(n_bins) * cfg.sample_rate / cfg.n_fft
        common = dict(x_coords=times, y_coords=freqs, x_axis="time", y_axis="hz", sr=cfg.sample_rate)
        top, bottom = axes[0, j], axes[1, j]
        img = librosa.display.specshow(p.spec, ax=top, cmap="magma", **common)
        fig.colorbar(img, ax=top, pad=0.01, label="ln |STFT|" if j == n - 1 else None)
        top.set_title(p.title, fontsize=9)
        if p.attention is not None:
            up = upsample_attention(p.attention, n_bins, n_frames, grid)
            # colours span this map's min..max (brighter = larger weight, as in the paper); the
            # title says how far from uniform (mean pooling) it is: peak / (1 / number of cells)
            img = librosa.display.specshow(up, ax=bottom, cmap="viridis", vmin=up.min(), vmax=up.max(), **common)
            fig.colorbar(img, ax=bottom, pad=0.01, format="%.4g", label="attention weight" if j == n - 1 else None)
            bottom.set_title(
                f"2-D attention ({p.attention.shape[0]}x{p.attention.shape[1]} cells), "
                f"peak {p.attention.max() * p.attention.size:.2f}x uniform", fontsize=8)
        else:
            bottom.text(0.5, 0.5, "no attention (baseline model)", ha="center", transform=bottom.transAxes)
        top.set_xlabel("")
        bottom.set_xlabel("time (s)")
        if j:
            top.set_ylabel("")
            bottom.set_ylabel("")
    return fig


def figure_to_rgb(fig) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a Figure (for W&B)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# --- Figure 4 ----------------------------------------------------------------------------------


@torch.inference_mode()
def posteriors(module, loader) -> dict[int, tuple[np.ndarray, int]]:
    """Utterance posteriors (segments averaged) of a dataloader: utt_index -> (probs, label)."""
    logits, utts, labels = [], [], {}
    for batch in loader:
        out, _ = module(batch["x"].to(module.device), batch["lengths"].to(module.device))
        logits.append(out.float().cpu())
        utts.append(batch["utt_index"])
        labels.update(zip(batch["utt_index"].tolist(), batch["y"].tolist()))
    ids, mean = average_posteriors(torch.cat(logits), torch.cat(utts))
    return {u: (p, labels[u]) for u, p in zip(ids.tolist(), mean.numpy())}


def pick_examples(post: dict[int, tuple[np.ndarray, int]], n_classes: int) -> list[tuple[int, int, bool]]:
    """Per class: the correctly classified utterance with the highest posterior of its class,
    else (none correct) the one with the highest posterior of its class. [(utt, class, correct)]."""
    picks = []
    for c in range(n_classes):
        members = [(utt, p) for utt, (p, y) in post.items() if y == c]
        if not members:
            continue
        correct = [(utt, p) for utt, p in members if int(np.argmax(p)) == c]
        utt, _ = max(correct or members, key=lambda up: (up[1][c], -up[0]))
        picks.append((utt, c, bool(correct)))
    return picks


def make_figure4(ckpt: str | Path, out: str | Path = DEFAULT_OUT) -> Path:
    module, cfg, dm_hp = load_checkpoint(ckpt)
    if not isinstance(getattr(module.net, "head", None), AttentionHead):
        raise ValueError(f"{ckpt}: {type(module.net).__name__} has no attention, so figure 4 cannot be drawn")
    dm = datamodule_from_hparams(dm_hp)
    dm.prepare_data()
    dm.setup("test")
    ds = dm.datasets["test"]
    post = posteriors(module, dm.test_dataloader())
    names = module.class_names
    panels = []
    for u, c, correct in pick_examples(post, len(names)):
        row = dm.rows[ds.indices[u]]
        spec = torch.from_numpy(dm.cache.load(row.path).astype(np.float32))
        probs, att = attention_of(module, spec)
        pred = int(np.argmax(probs))
        note = "" if correct else "  (no correct one)"
        panels.append(
            Panel(spec.numpy(), att, f"{row.utterance_id}\ntrue {names[c]}, predicted {names[pred]} (p={probs[pred]:.2f}){note}")
        )
        log.info("figure4: %s true %s predicted %s p=%.3f", row.utterance_id, names[c], names[pred], probs[pred])
    fig = draw_panels(panels, cfg, encoder_grid(module.net.encoder))
    fig.suptitle(f"Attention of the FCN on test utterances ({dm.corpus_name} corpus, fold {dm_hp.get('fold', '?')})\n"
                 f"{ckpt}", fontsize=9)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ser_fcn figure4",
        description="Figure 4 of the paper: per emotion, one test utterance's spectrogram and its 2-D attention",
    )
    parser.add_argument("--ckpt", default=None, help=f"checkpoint (default: the newest {DEMO_CKPT_GLOB})")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        ckpt = Path(args.ckpt) if args.ckpt else newest_checkpoint()
        out = make_figure4(ckpt, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(f"wrote {out} (checkpoint {ckpt})")


if __name__ == "__main__":  # pragma: no cover
    main()
