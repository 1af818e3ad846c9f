"""Goal 4: the feature cache's build speed (real-time factor) and the data loader's frame rate."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_fcn.data.features import FeatureCache
from ser_fcn.corpora.iemocap import PAPER_CLASSES

from .corpus import write_wavs


def cache_build_rtf(durations: np.ndarray, repeats: int = 3, workers_baseline: int = 1) -> dict:
    """Seconds of audio per second of `FeatureCache.ensure` on a fresh cache, for the default
    (parallel) build and, interleaved with it, a one-worker build. Medians of `repeats`."""
    with tempfile.TemporaryDirectory(prefix="ser_fcn_bench_wav_") as tmp:
        paths = write_wavs(Path(tmp) / "wav", durations)
        audio_s = float(np.sum(durations))
        walls: dict[str, list[float]] = {"default": [], "one_worker": []}
        for rep in range(repeats):
            for kind in ("default", "one_worker") if rep % 2 == 0 else ("one_worker", "default"):
                cache = FeatureCache(Path(tmp) / f"cache-{kind}-{rep}")
                t0 = time.perf_counter()
                cache.ensure(paths, progress=False, workers=None if kind == "default" else workers_baseline)
                walls[kind].append(time.perf_counter() - t0)
        frames = sum(cache.ensure(paths, progress=False)[0])
    wall = statistics.median(walls["default"])
    wall1 = statistics.median(walls["one_worker"])
    return {
        "files": len(paths),
        "audio_seconds": round(audio_s, 1),
        "frames": frames,
        "wall_seconds": [round(w, 3) for w in walls["default"]],
        "rtf": audio_s / wall,
        "one_worker_wall_seconds": [round(w, 3) for w in walls["one_worker"]],
        "one_worker_rtf": audio_s / wall1,
    }


def loader_frames_per_s(manifest: Path, cache_dir: Path, max_batches: int | None = None, time_budget_s: float = 60.0) -> dict:
    """Valid frames per second that SERDataModule's train DataLoader (its defaults: bucketed
    sampler, pad_collate, num_workers=0) delivers from an already filled cache."""
    from ser_fcn.data.datamodule import SERDataModule

    dm = SERDataModule(manifest=str(manifest), cache_dir=str(cache_dir), classes=list(PAPER_CLASSES), progress=False)
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    loader = dm.train_dataloader()
    frames = batches = 0
    t0 = time.perf_counter()
    for batch in loader:
        frames += int(batch["lengths"].sum())
        batches += 1
        if (max_batches and batches >= max_batches) or time.perf_counter() - t0 > time_budget_s:
            break
    wall = time.perf_counter() - t0
    return {
        "setup_seconds": round(setup_s, 2),
        "batches": batches,
        "batches_per_epoch": len(loader),
        "frames": frames,
        "seconds": round(wall, 3),
        "frames_per_s": frames / wall,
        "num_workers": dm.hparams.num_workers,
        "cache_dtype": dm.hparams.cache_dtype,
    }
