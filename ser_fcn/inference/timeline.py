"""Emotion over time in a long recording: a label per speech window, pauses labelled as such.

Speech first (inference/vad.py): the file's speech regions are found, the time between them is
PAUSE (label "pause", no probabilities), and windows are built inside each region: a region
up to `window_s` long is one window, a longer one is split into windows of `window_s` every
`hop_s` (the last one cut at the region's end). No window holds a pause, so the attention
pooling never averages over one as if it were speech. The defaults (DEFAULT_WINDOW_S,
DEFAULT_HOP_S, VADConfig) were chosen on calls built from validation speakers
(results/timeline.md).

Two ways to score the windows (shared encoding is the default of `predict --timeline`):

* shared encoding: the encoder runs once over each speech region (alone, as an utterance is
  run in training), in chunks of `chunk_cells` output cells with a margin of cells on both
  sides, so memory stays bounded and every kept cell equals the cell of a whole-region
  encoding; each window then only runs the model's `pool` (FCNAttention: the recurrent layer
  where there is one, the attention pooling, the classifier) over the encoder cells it holds.
  Window starts are snapped to the encoder's cell grid (AlexNet: 32 frames = 0.32 s) from the
  region's start, so window cell k is the region's cell start/32 + k. A window's answer
  differs from the answer for that window cut out and run alone only in its border cells: run
  alone they see zero padding, here they see the neighbouring speech of the same region. A
  region that is one window gives exactly the region run alone. The difference is measured in
  tests/test_timeline.py and stated in the README.
* exact (`predict --exact_windows`): each window is cut out and run alone, windows batched;
  identical to running the window alone by construction (the encoder masks padding). It is
  the only way for a model without an encoder + attention head (the segment baselines), and
  costs window / hop times more encoder work on long regions.

Memory: the wave, one chunk's spectrogram and encoder activations, and the encoder cells of
the speech (256 x F' floats per 0.32 s: about 60 MB per hour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.features import SpectrogramConfig, log_spectrogram
from ..data.speaker_norm import SpeakerStats, own_statistics, standardise
from ..models.receptive_field import encoder_grid
from .vad import VADConfig, speech_regions

PAUSE = "pause"  # the label of the time between speech regions (no probabilities)
# Chosen on the validation speaker's call (results/timeline.md, `python -m benchmarks.vad`):
# windows of 1.5 / 3 / 5 / 8 / 30 s gave EDER 0.58 / 0.55 / 0.48 / 0.44 / 0.44 there. The model
# was trained on whole utterances, and a speech region up to 8 s (most utterances) scored
# whole is one; longer regions get 8 s windows every 2 s (a label every 2 s of a long turn).
DEFAULT_WINDOW_S = 8.0
DEFAULT_HOP_S = 2.0


@dataclass(frozen=True)
class Window:
    first: int  # first frame
    stop: int  # one past the last frame


def supports_shared(net: nn.Module) -> bool:
    """Shared encoding needs a model split into `encode` and `pool` (FCNAttention is)."""
    return hasattr(net, "encode") and hasattr(net, "pool")


def receptive_field(encoder: nn.Module) -> int:
    """Time-axis receptive field (frames) of one encoder output cell."""
    rf, jump = 1, 1
    for layer in encoder.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel = layer.kernel_size[-1] if isinstance(layer.kernel_size, tuple) else layer.kernel_size
            stride = layer.stride[-1] if isinstance(layer.stride, tuple) else layer.stride
            rf += (kernel - 1) * jump
            jump *= stride
    return rf


def windows(n_frames: int, window: int, hop: int, snap: int = 1) -> list[Window]:
    """Windows of `window` frames every `hop` frames, starts rounded to multiples of `snap`,
    the last one cut at the end of the file (shorter) so every frame is covered."""
    if hop <= 0 or hop > window or window < snap:
        raise ValueError(f"need 0 < hop <= window and window >= {snap} frames (one encoder cell), "
                         f"got window {window} frames, hop {hop} frames")
    out, k = [], 0
    while True:
        first = int(round(k * hop / snap)) * snap
        if out:  # no gap after the previous window, and always forward
            first = max(min(first, out[-1].stop // snap * snap), out[-1].first + snap)
        out.append(Window(first, min(first + window, n_frames)))
        if out[-1].stop >= n_frames:
            return out
        k += 1


def _spectrogram(wave: torch.Tensor, first: int, stop: int, cfg: SpectrogramConfig,
                 stats: SpeakerStats | None = None) -> torch.Tensor:
    """Frames first..stop-1 of the file's log spectrogram, from the samples they cover only;
    standardised with `stats` when given (a speaker_norm model's input)."""
    spec = log_spectrogram(wave[first * cfg.hop_length: (stop - 1) * cfg.hop_length + cfg.win_length], cfg)
    return spec if stats is None else standardise(spec, stats)


def speech_statistics(wave: torch.Tensor, cfg: SpectrogramConfig, regions: list[tuple[float, float]]) -> SpeakerStats | None:
    """Per-bin (mean, std) over the frames of the speech regions: a recording's own statistics,
    standing for its speaker's under data.speaker_norm (pauses left out, as a corpus's utterances
    hold little silence). None when no region is long enough for a frame."""
    parts = [p for p in (_region_wave(wave, r, cfg) for r in regions) if p.numel() >= cfg.win_length]
    if not parts:
        return None
    return own_statistics(len(parts), lambda i: log_spectrogram(parts[i], cfg))


@torch.inference_mode()
def encode_file(module, wave: torch.Tensor, cfg: SpectrogramConfig, chunk_cells: int = 256,
                stats: SpeakerStats | None = None) -> torch.Tensor:
    """Encoder cells (C, F', T') of the whole file, computed chunk by chunk (see module doc);
    `stats`: a speaker_norm model's standardisation."""
    enc = module.net.encoder
    jump = int(encoder_grid(enc).jump_t)
    # cells whose input reaches past a chunk (a model's deltas reach 4 frames more: inside it)
    margin = math.ceil(receptive_field(enc) / jump) + 1
    n_frames = cfg.n_frames(wave.numel())
    total = int(enc.output_lengths(torch.tensor([n_frames]))[0])
    out = None  # filled chunk by chunk (no list + cat: half the peak)
    for start_cell in range(0, total, chunk_cells):
        stop_cell = min(start_cell + chunk_cells, total)
        first = max(0, start_cell - margin) * jump
        stop = min(n_frames, (stop_cell + margin) * jump + receptive_field(enc))
        x = _spectrogram(wave, first, stop, cfg, stats).to(module.device)[None, None]
        n = torch.tensor([x.shape[-1]], device=module.device)
        feats, _ = module.net.encode(module.normalize(x, n), n)  # the deltas too, where the model has them
        if out is None:
            out = feats.new_empty(feats.shape[1], feats.shape[2], total, device="cpu")
        out[..., start_cell:stop_cell] = feats[0, :, :, start_cell - first // jump: stop_cell - first // jump].cpu()
    return out


@torch.inference_mode()
def _pool_windows(module, cells: torch.Tensor, wins: list[Window], jump: int, batch: int = 256) -> torch.Tensor:
    """The model's `pool` (recurrent layer where there is one, attention pooling, classifier)
    of each window over its cells of the shared encoding."""
    enc, out = module.net.encoder, []
    counts = enc.output_lengths(torch.tensor([w.stop - w.first for w in wins]))
    for i in range(0, len(wins), batch):
        idx = range(i, min(i + batch, len(wins)))
        width = int(max(counts[j] for j in idx))
        x = cells.new_zeros(len(idx), cells.shape[0], cells.shape[1], width)
        for row, j in enumerate(idx):
            k0 = wins[j].first // jump
            part = cells[:, :, k0: k0 + int(counts[j])]
            x[row, :, :, : part.shape[-1]] = part
        lengths = torch.tensor([min(int(counts[j]), cells.shape[-1] - wins[j].first // jump) for j in idx])
        logits, _ = module.net.pool(x.to(module.device), lengths.to(module.device))
        out.append(logits.float().softmax(-1).cpu())
    return torch.cat(out)


@torch.inference_mode()
def _run_windows(module, wave: torch.Tensor, wins: list[Window], cfg: SpectrogramConfig, width: int,
                 batch: int = 32, stats: SpeakerStats | None = None) -> torch.Tensor:
    """Each window cut out and run alone (batched with lengths: the same answer), zero-padded
    to `width` frames: the fixed 3 s input the segment baselines are trained on (the FCN masks
    the padding, so it changes nothing there)."""
    out = []
    for i in range(0, len(wins), batch):
        group = wins[i: i + batch]
        specs = [_spectrogram(wave, w.first, w.stop, cfg, stats) for w in group]
        x = torch.zeros(len(specs), 1, specs[0].shape[0], max(width, *(spec.shape[-1] for spec in specs)))
        for row, spec in enumerate(specs):
            x[row, 0, :, : spec.shape[-1]] = spec
        lengths = torch.tensor([spec.shape[-1] for spec in specs])
        logits, _ = module(x.to(module.device), lengths.to(module.device))
        out.append(logits.float().softmax(-1).cpu())
    return torch.cat(out)


@torch.inference_mode()
def whole_file_probs(module, cells: torch.Tensor) -> np.ndarray:
    """The whole-file answer from the shared encoding: the model's `pool` over all its cells
    (the same as one forward pass over the file, without its memory)."""
    logits, _ = module.net.pool(cells[None].to(module.device), torch.tensor([cells.shape[-1]], device=module.device))
    return logits.float().softmax(-1)[0].cpu().numpy()


def encode_regions(module, wave: torch.Tensor, cfg: SpectrogramConfig, regions: list[tuple[float, float]],
                   chunk_cells: int = 256, stats: SpeakerStats | None = None) -> list[torch.Tensor]:
    """The shared encoding of each speech region (`encode_file` of the region alone)."""
    return [encode_file(module, _region_wave(wave, region, cfg), cfg, chunk_cells, stats) for region in regions]


def _region_wave(wave: torch.Tensor, region: tuple[float, float], cfg: SpectrogramConfig) -> torch.Tensor:
    return wave[round(region[0] * cfg.sample_rate): round(region[1] * cfg.sample_rate)]


def _pause(start: float, end: float) -> dict:
    return {"start": round(start, 3), "end": round(end, 3), "label": PAUSE, "probabilities": None}


def timeline(module, wave: torch.Tensor, cfg: SpectrogramConfig, class_names: list[str],
             window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S,
             regions: list[tuple[float, float]] | None = None, cells: list[torch.Tensor] | None = None,
             vad: VADConfig = VADConfig(), stats: SpeakerStats | None = None) -> list[dict]:
    """[{start, end (s), label, probabilities {class: p} or None}] of `wave` (1-D, cfg's rate),
    in time order: the windows of each speech region and a PAUSE entry for each gap.

    `regions`: speech regions (start_s, end_s), default `speech_regions(wave, vad)`. With
    `cells` (`encode_regions` of those regions) windows are pooled from them (shared
    encoding); without, each window is run alone (exact), standardised with `stats` (a
    speaker_norm model's; `speech_statistics`)."""
    sr = cfg.sample_rate
    if regions is None:
        regions = speech_regions(wave, sr, vad)
    if cells is not None and len(cells) != len(regions):
        raise ValueError(f"{len(cells)} region encodings for {len(regions)} speech regions")
    jump = int(encoder_grid(module.net.encoder).jump_t) if cells is not None else 1
    frames_per_s = 1000 / cfg.hop_ms
    width, hop = round(window_s * frames_per_s), round(hop_s * frames_per_s)
    out, t = [], 0.0
    for r, region in enumerate(regions):
        part = _region_wave(wave, region, cfg)
        if part.numel() < cfg.win_length:  # shorter than one analysis window: nothing to score
            continue
        if region[0] > t:
            out.append(_pause(t, region[0]))
        wins = windows(cfg.n_frames(part.numel()), width, min(hop, width), snap=min(jump, width))
        if cells is not None:
            probs = _pool_windows(module, cells[r], wins, jump)
        else:
            probs = _run_windows(module, part, wins, cfg, width, stats=stats)
        for w, p in zip(wins, probs.numpy()):
            start = region[0] + w.first * cfg.hop_length / sr
            stop = region[0] + min(part.numel(), (w.stop - 1) * cfg.hop_length + cfg.win_length) / sr
            out.append({"start": round(start, 3), "end": round(stop, 3), "label": class_names[int(np.argmax(p))],
                        "probabilities": {c: round(float(q), 6) for c, q in zip(class_names, p)}})
        t = max(t, round(region[0] + part.numel() / sr, 3))
    duration = wave.numel() / sr
    if duration - t >= 0.0005:
        out.append(_pause(t, duration))
    return out


def summarise(segments: list[dict], limit: int = 8) -> str:
    """Runs of one label as 'start-end label', the first `limit` of them."""
    runs: list[list] = []
    for s in segments:
        if runs and runs[-1][2] == s["label"] and s["start"] <= runs[-1][1]:
            runs[-1][1] = s["end"]
        else:
            runs.append([s["start"], s["end"], s["label"]])
    text = ", ".join(f"{a:.1f}-{b:.1f}s {lab}" for a, b, lab in runs[:limit])
    return text + (f", … ({len(runs) - limit} more runs)" if len(runs) > limit else "")
