"""Goal 7: `predict --timeline` on a one-hour 16 kHz file: speed (x real time) and peak
resident memory, in a fresh process limited to 2 torch threads.

The child reads the wav (load_audio), finds its speech (speech_regions), encodes each speech
region in chunks (encode_regions), pools the default windows and the whole file's speech, as
`Predictor.analyse_timeline` does for an attention model (a random-init FCNAttention: speed
and memory do not depend on the weights). The audio is speech-like noise with 4 silent
seconds every 20 s. Peak RSS is the child's own (VmHWM, `memory.peak_rss_mb`: getrusage
would report the bench process's peak, see there).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_wav(path: Path, seconds: float, sr: int = 16_000) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16") as f:
        for start in range(0, int(seconds), 60):  # a minute at a time: bounded memory here too
            n = int(min(60, seconds - start) * sr)
            t = np.arange(n) / sr
            x = 0.1 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))  # 3 Hz "syllables"
            x[(t % 20) < 4.0] = 0.0
            f.write(x.astype(np.float32))


def measure(seconds: float = 3600.0, threads: int = 2) -> dict:
    """{audio_seconds, wall_seconds, rtf, peak_rss_mb, windows, threads, load_average}."""
    with tempfile.TemporaryDirectory(prefix="ser_fcn_bench_timeline_") as tmp:
        wav = Path(tmp) / "hour.wav"
        _write_wav(wav, seconds)
        load = [round(x, 2) for x in os.getloadavg()]
        out = subprocess.run([sys.executable, "-m", "benchmarks.timeline", str(wav), str(threads)],
                             check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"load_average_start": load}


def _child(argv: list[str]) -> None:
    import torch

    from ser_fcn.corpora.audio import load_audio
    from ser_fcn.data.features import SpectrogramConfig
    from ser_fcn.models import FCNAttention
    from ser_fcn.inference.timeline import PAUSE, encode_regions, timeline, whole_file_probs
    from ser_fcn.inference.vad import speech_regions
    from ser_fcn.training.module import SERModule

    from .memory import peak_rss_mb

    torch.set_num_threads(int(argv[1]))
    cfg = SpectrogramConfig()
    module = SERModule(FCNAttention(num_classes=4), class_names=["neu", "hap", "sad", "ang"]).eval()
    t0 = time.perf_counter()
    wave = load_audio(argv[0], cfg.sample_rate)
    regions = speech_regions(wave, cfg.sample_rate)
    t_vad = time.perf_counter() - t0
    cells = encode_regions(module, wave, cfg, regions)
    whole_file_probs(module, torch.cat(cells, -1))
    segs = timeline(module, wave, cfg, module.class_names, regions=regions, cells=cells)
    wall = time.perf_counter() - t0
    audio_s = wave.numel() / cfg.sample_rate
    print(json.dumps({
        "audio_seconds": round(audio_s, 1), "wall_seconds": round(wall, 2), "rtf": round(audio_s / wall, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "getrusage_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "read_and_vad_seconds": round(t_vad, 2), "speech_regions": len(regions),
        "windows": sum(s["label"] != PAUSE for s in segs), "pauses": sum(s["label"] == PAUSE for s in segs),
        "threads": torch.get_num_threads(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }))


def compare(ckpt: str, wav: str, window_s: float = 3.0, hop_s: float = 0.96) -> dict:
    """Shared encoding vs each window run alone, on a trained checkpoint and a wav: the
    largest / median / 95th percentile |probability difference| and how often labels agree.
    `python -m benchmarks.timeline --compare CKPT WAV` (hop 0.96 s: both ways, same windows)."""
    from ser_fcn.corpora.audio import load_audio
    from ser_fcn.inference.predict import Predictor
    from ser_fcn.inference.timeline import encode_regions, timeline
    from ser_fcn.inference.vad import speech_regions

    p = Predictor(ckpt)
    wave = load_audio(wav, p.cfg.sample_rate)
    regions = speech_regions(wave, p.cfg.sample_rate)
    args = (p.module, wave, p.cfg, p.class_names, window_s, hop_s, regions)
    shared, alone = timeline(*args, cells=encode_regions(p.module, wave, p.cfg, regions)), timeline(*args)
    pairs = [(a, b) for a, b in zip(shared, alone) if a["probabilities"] and a["start"] == b["start"]]
    d = [max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in p.class_names) for a, b in pairs]
    return {"windows": len(d), "max_abs_diff": round(max(d), 4), "median_abs_diff": round(float(np.median(d)), 4),
            "p95_abs_diff": round(float(np.percentile(d, 95)), 4),
            "labels_agree": f"{sum(a['label'] == b['label'] for a, b in pairs)}/{len(pairs)}"}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        print(compare(*sys.argv[2:4]))
    else:
        _child(sys.argv[1:])
