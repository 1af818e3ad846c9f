"""Voice activity detection before the timeline scores anything: where the speech is.

The timeline gives an emotion to speech only. A window that holds a pause looks quiet and
slow, which is what sadness looks like to the model (issue 23: 134 of 175 windows "sad" on a
call of 40 utterances with half-second pauses), so the pauses are found first and labelled
PAUSE, and windows are built inside the speech regions (inference/timeline.py).

Detector: webrtcvad (the webrtcvad-wheels package: Google's WebRTC VAD, a small C extension,
CPU only) at aggressiveness `mode` on 30 ms frames, or, with detector "energy", an energy rule
on 10 ms blocks: a block is speech when its level is above `rel_db` below the file's loud
level (the LOUD_PERCENTILE-th percentile of the block levels) and above `floor_db`. Then, as
every VAD's post-processing does: pauses shorter than `min_pause_s` are kept inside speech
(the gaps between words), speech shorter than `min_speech_s` is dropped (clicks), and each
region is widened by `pad_s` on both sides (onsets and decays are quiet).

Why webrtcvad, and these numbers (results/timeline.md has the measurements and commands):
webrtcvad (modes 0/2/3), silero-vad (6.2.3, its torch model, threshold 0.5) and the energy
rule, with the same post-processing, on the call of the demo model's VALIDATION speaker
(`python -m benchmarks.vad`; 34 utterances, 0.5 s pauses). Clean call, the timeline's EDER /
majority agreement: energy rule (rel_db 35) 0.566 / 0.47, webrtcvad mode 3 0.570 / 0.47,
silero-vad 0.565 / 0.44: a tie. The same call with a -50 dBFS noise floor (19 dB below its
speech level): the energy rule, being relative, called the whole call speech (false alarm
0.18, EDER 1.06, as with no VAD), webrtcvad mode 3 found the pauses (false alarm 0.001,
EDER 0.91), silero-vad too (0.006, 0.89). Speed on 60 s of the call, shared 2-core CPU, two
runs: energy 1700-3200x real time, webrtcvad 600-1100x, silero-vad 2-10x (a torch call per
32 ms; the one-hour file must be scored at >= 100x, so silero-vad is out). min_pause_s 0.15
and 0.25 gave the same EDER, 0.5 merged utterances across the 0.5 s pauses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BLOCK_S = 0.01  # 10 ms blocks: the spectrogram's hop, so regions fall on frame boundaries
LOUD_PERCENTILE = 95  # the file's speech level: loud enough to be speech, not its rare peaks


@dataclass(frozen=True)
class VADConfig:
    """Settings of the detector and its post-processing; each default was chosen on
    validation-speaker calls (results/timeline.md, `python -m benchmarks.vad`)."""

    detector: str = "webrtc"  # "webrtc" (webrtcvad) or "energy" (the rule below): see the module doc
    mode: int = 3  # webrtcvad's aggressiveness 0-3: 3 had the lowest EDER on the clean validation call

    # the energy rule (detector "energy")
    rel_db: float = 35.0  # speech is within 35 dB of the file's loud level (35 and 45 tied on validation; 25 cut words)
    floor_db: float = -70.0  # dBFS: below it nothing is speech (10 dB above the -80 dBFS "silent" file flag)
    # post-processing, both detectors
    min_pause_s: float = 0.25  # shorter gaps stay inside speech (words); 0.5 merged utterances on validation
    min_speech_s: float = 0.1  # shorter bursts are clicks, not speech
    pad_s: float = 0.05  # widen each region: onsets and decays are quieter than the vowel (costs ~0.1 s of false alarm a region)


def block_levels(wave: torch.Tensor, sample_rate: int, chunk_s: float = 60.0) -> np.ndarray:
    """Level (dBFS of the mean square) of each 10 ms block of `wave`, a minute at a time
    (bounded memory on an hour-long file); a last partial block counts as a block."""
    block = round(BLOCK_S * sample_rate)
    n_blocks = -(-wave.numel() // block)
    out = np.empty(n_blocks, dtype=np.float32)
    step = round(chunk_s / BLOCK_S) * block
    for start in range(0, wave.numel(), step):
        part = wave[start: start + step].double()
        full = part.numel() // block
        ms = part[: full * block].view(full, block).square().mean(1)
        if part.numel() > full * block:
            ms = torch.cat([ms, part[full * block:].square().mean()[None]])
        out[start // block: start // block + ms.numel()] = (10 * torch.log10(ms + 1e-12)).float().numpy()
    return out


def energy_speech(levels: np.ndarray, cfg: VADConfig) -> np.ndarray:
    """Speech decision of each block (bool) from its level: the energy rule."""
    if levels.size == 0:
        return np.zeros(0, dtype=bool)
    loud = float(np.percentile(levels, LOUD_PERCENTILE))
    return levels > max(cfg.floor_db, loud - cfg.rel_db)


def webrtc_speech(wave: torch.Tensor, sample_rate: int, mode: int, chunk_s: float = 60.0) -> np.ndarray:
    """Speech decision of each 10 ms block by webrtcvad (30 ms frames of 16-bit PCM, each
    frame's decision given to its three blocks; a last partial frame is not speech)."""
    import webrtcvad

    vad, frame, block = webrtcvad.Vad(mode), round(0.03 * sample_rate), round(BLOCK_S * sample_rate)
    out = np.zeros(-(-wave.numel() // block), dtype=bool)
    step = round(chunk_s / 0.03) * frame  # a minute at a time: the 16-bit copy stays small
    for start in range(0, wave.numel(), step):
        pcm = (wave[start: start + step].clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes()
        for i in range(0, len(pcm) // 2 - frame + 1, frame):
            if vad.is_speech(pcm[2 * i: 2 * (i + frame)], sample_rate):
                first = (start + i) // block
                out[first: first + 3] = True
    return out


def _runs(mask: np.ndarray) -> list[list[int]]:
    """[first, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def regions_from_blocks(speech: np.ndarray, cfg: VADConfig) -> list[tuple[float, float]]:
    """Speech regions (start_s, end_s) from per-block decisions: short pauses closed, short
    bursts dropped, regions padded (and merged where the padding makes them touch)."""
    runs = _runs(speech)
    closed: list[list[int]] = []
    for run in runs:
        if closed and (run[0] - closed[-1][1]) * BLOCK_S < cfg.min_pause_s:
            closed[-1][1] = run[1]
        else:
            closed.append(run)
    kept = [r for r in closed if (r[1] - r[0]) * BLOCK_S >= cfg.min_speech_s]
    end = speech.size * BLOCK_S
    out: list[tuple[float, float]] = []
    for a, b in kept:
        start, stop = max(0.0, a * BLOCK_S - cfg.pad_s), min(end, b * BLOCK_S + cfg.pad_s)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return [(round(a, 3), round(b, 3)) for a, b in out]


def speech_regions(wave: torch.Tensor, sample_rate: int, cfg: VADConfig = VADConfig()) -> list[tuple[float, float]]:
    """Speech regions (start_s, end_s) of `wave` (1-D float): webrtcvad's decisions (or the
    energy rule's, detector "energy") through the post-processing above."""
    if cfg.detector == "webrtc":
        speech = webrtc_speech(wave, sample_rate, cfg.mode)
    elif cfg.detector == "energy":
        speech = energy_speech(block_levels(wave, sample_rate), cfg)
    else:
        raise ValueError(f"VAD detector must be 'webrtc' or 'energy', got {cfg.detector!r}")
    return regions_from_blocks(speech, cfg)
