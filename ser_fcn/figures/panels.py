"""The attention panel of Figure 4: a log spectrogram (top) over its upsampled 2-D attention
(bottom). Drawn by `figure4` (study/figure4.py), `predict --figures DIR` and the W&B
`AttentionImageLogger` (training/attention_logger.py). Upsampling: models/receptive_field.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.features import SpectrogramConfig
from ..models.receptive_field import CellGrid, upsample_attention


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
        freqs = cfg.bin_frequencies()[:n_bins]
        common = dict(x_coords=times, y_coords=freqs, x_axis="time", y_axis="hz", sr=cfg.sample_rate)
        top, bottom = axes[0, j], axes[1, j]
        img = librosa.display.specshow(p.spec, ax=top, cmap="magma", **common)
        fig.colorbar(img, ax=top, pad=0.01, label=("ln mel power" if cfg.mel else "ln |STFT|") if j == n - 1 else None)
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
