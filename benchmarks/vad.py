"""The timeline's voice activity detection and settings, chosen on VALIDATION-speaker calls.

`python -m benchmarks.vad --ckpt C [--noise_dbfs -45] [--out results/vad_choice.json]`

Builds the call of the checkpoint's validation speaker (`make-call --split val`: every
utterance, 0.5 s pauses, seed 0; optionally with a noise floor), then scores the timeline
(EDER, per-utterance majority agreement; inference/timeline_eval.py) for
* no VAD (the file as one region: the old sliding windows over everything),
* the energy rule (inference/vad.py) over a small grid of its threshold and minimum pause,
* webrtcvad (the package's detector, aggressiveness 0, 2, 3) and silero-vad (its torch
  model, threshold 0.5) when importable (not a dependency: `pip install --no-deps --target
  DIR silero-vad` and PYTHONPATH=DIR),
each with the same region post-processing, and for the best regions a grid of window / hop.
Also each detector's speed on 60 s of the call (x real time, 2 torch threads).
Never run it on a test speaker: the defaults it picks must not see the test.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from ser_fcn.inference.call import build_call, held_out_rows
from ser_fcn.inference.predict import Predictor
from ser_fcn.inference.timeline import encode_regions, timeline
from ser_fcn.inference.timeline_eval import evaluate_timeline
from ser_fcn.inference.vad import BLOCK_S, VADConfig, block_levels, energy_speech, regions_from_blocks, webrtc_speech


def silero_blocks(wave: torch.Tensor, sr: int, threshold: float = 0.5) -> np.ndarray:
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # its import sets torch to one thread

    torch.set_num_threads(threads)
    model, frame = load_silero_vad(), 512
    n_blocks = -(-wave.numel() // round(BLOCK_S * sr))
    out = np.zeros(n_blocks, dtype=bool)
    with torch.inference_mode():
        model.reset_states()
        for i in range(0, wave.numel() - frame + 1, frame):
            p = float(model(wave[i: i + frame], sr))
            a, b = i // round(BLOCK_S * sr), (i + frame) // round(BLOCK_S * sr)
            out[a:b] = p >= threshold
    return out


def _speed(fn, wave, sr) -> float:
    part = wave[: 60 * sr]
    t = time.perf_counter()
    fn(part)
    return round(part.numel() / sr / (time.perf_counter() - t), 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.vad", description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--noise_dbfs", type=float, default=None)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    p = Predictor(args.ckpt)
    sr = p.cfg.sample_rate
    rows, who = held_out_rows(args.ckpt, "val")
    wave_np, ref = build_call(rows, args.pause, seed=0, noise_dbfs=args.noise_dbfs)
    wave = torch.from_numpy(wave_np)
    report = {"call": f"{who}: {len(rows)} utterances, {args.pause:g} s pauses, seed 0, noise {args.noise_dbfs} dBFS, "
                      f"{wave.numel() / sr:.1f} s", "detectors": {}, "windows": {}}
    utt = [p.analyse_wave(wave[round(s.start * sr): round(s.end * sr)]).prediction.label == s.label for s in ref]
    report["utterance_accuracy"] = sum(utt) / len(utt)
    print(report["call"], f"utterance-by-utterance accuracy {sum(utt)}/{len(utt)}", flush=True)

    def score(regions, window_s=3.0, hop_s=1.0, cells=None):
        cells = cells if cells is not None else encode_regions(p.module, wave, p.cfg, regions)
        rep = evaluate_timeline(timeline(p.module, wave, p.cfg, p.class_names, window_s, hop_s, regions, cells), ref)
        return {"eder": round(rep["eder"]["eder"], 4), "missed": round(rep["eder"]["missed"], 4),
                "false_alarm": round(rep["eder"]["false_alarm"], 4), "wrong_label": round(rep["eder"]["wrong_label"], 4),
                "agreement": round(rep["majority"]["agreement"], 4), "regions": len(regions)}

    base = replace(VADConfig(), detector="energy")
    levels = block_levels(wave, sr)
    candidates = {"none": [(0.0, round(wave.numel() / sr, 3))]}
    for rel in (25.0, 30.0, 35.0, 45.0):
        for pause in (0.25, 0.5):
            cfg = replace(base, rel_db=rel, min_pause_s=pause)
            candidates[f"energy rel_db={rel:g} min_pause_s={pause:g}"] = regions_from_blocks(energy_speech(levels, cfg), cfg)
    speeds = {"energy": _speed(lambda w: regions_from_blocks(energy_speech(block_levels(w, sr), base), base), wave, sr)}
    try:
        for mode in (0, 2, 3):
            candidates[f"webrtcvad mode={mode}"] = regions_from_blocks(webrtc_speech(wave, sr, mode), base)
        speeds["webrtcvad"] = _speed(lambda w: webrtc_speech(w, sr, 2), wave, sr)
    except ImportError as err:
        report["webrtcvad"] = f"not compared: {err}"
    try:
        candidates["silero-vad threshold=0.5"] = regions_from_blocks(silero_blocks(wave, sr), base)
        speeds["silero-vad"] = _speed(lambda w: silero_blocks(w, sr), wave, sr)
    except ImportError as err:
        report["silero-vad"] = f"not compared: {err}"
    report["x_real_time_60s"] = speeds
    print("speed (x real time, 60 s):", speeds, flush=True)
    for name, regions in candidates.items():
        report["detectors"][name] = score(regions)
        print(f"{name:<40} {report['detectors'][name]}", flush=True)
    best = min((k for k in candidates if k != "none"), key=lambda k: (report["detectors"][k]["eder"], -report["detectors"][k]["agreement"]))
    report["best_detector"] = best
    cells = encode_regions(p.module, wave, p.cfg, candidates[best])
    for window_s, hop_s in ((1.5, 0.5), (3.0, 1.0), (5.0, 1.0), (8.0, 2.0), (30.0, 5.0)):
        key = f"window {window_s:g} s hop {hop_s:g} s"
        report["windows"][key] = score(candidates[best], window_s, hop_s, cells)
        print(f"{best} {key}: {report['windows'][key]}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
