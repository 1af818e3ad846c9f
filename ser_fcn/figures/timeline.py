"""`predict --timeline --figures DIR`: the spectrogram with the timeline under it, a few
minutes per panel (one PNG per panel for long files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..corpora.audio import load_audio
from ..data.features import log_spectrogram

PANEL_S = 180.0  # seconds of audio per panel: long files get one PNG per 3 minutes


def draw_timeline(spec: np.ndarray, t0: float, hop_s: float, segments: list[dict], class_names: list[str], title: str):
    """Spectrogram (top) and each class's probability per window centre (bottom); silent
    pauses shaded grey. A matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    seconds = spec.shape[-1] * hop_s
    fig = Figure(figsize=(min(40.0, max(8.0, 0.12 * seconds)), 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    top.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(t0, t0 + seconds, 0, spec.shape[0]))
    top.set_ylabel("bin")
    top.set_title(title, fontsize=9)
    mids = np.array([(s["start"] + s["end"]) / 2 for s in segments])
    for c in class_names:
        pred = np.array([s["probabilities"][c] if s["probabilities"] else np.nan for s in segments])
        bottom.plot(mids, pred, marker=".", label=c)
    for s in segments:
        if s["probabilities"] is None:  # a pause
            bottom.axvspan(s["start"], s["end"], color="0.85", lw=0)
    bottom.set_ylim(0, 1)
    bottom.set_xlim(t0, t0 + seconds)
    bottom.set_ylabel("probability")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper right", fontsize=7, ncol=len(class_names))
    return fig


def save_timeline_figures(predictor, path, prediction, out: Path) -> list[Path]:
    """One PNG per PANEL_S seconds of `path` (named out, or out-01, out-02, … when long)."""
    cfg = predictor.cfg
    wave = load_audio(path, cfg.sample_rate)
    per_panel = int(PANEL_S * cfg.sample_rate)
    n_panels = max(1, -(-wave.numel() // per_panel))
    written = []
    for i in range(n_panels):
        part = wave[i * per_panel: (i + 1) * per_panel]
        if part.numel() < cfg.win_length:
            break
        t0, t1 = i * PANEL_S, i * PANEL_S + part.numel() / cfg.sample_rate
        segs = [s for s in prediction.timeline if s["end"] > t0 and s["start"] < t1]
        title = f"{Path(path).name} {t0:.0f}-{t1:.0f} s (whole file: {prediction.label})"
        fig = draw_timeline(log_spectrogram(part, cfg).numpy(), t0, cfg.hop_ms / 1000, segs,
                            predictor.class_names, title)
        target = out if n_panels == 1 else out.with_name(f"{out.stem}-{i + 1:02d}.png")
        fig.savefig(target, dpi=80)
        written.append(target)
    return written
