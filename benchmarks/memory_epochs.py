"""Resident memory after each of several training epochs, in a fresh process.

The child (`python -m benchmarks.memory_epochs ...`) sets up the allocator as
`python -m ser_fcn` does (`configure_allocator`, or not with --default-malloc, to see the
difference), then trains FCN + attention for `--epochs` whole epochs over a cached synthetic
corpus with the data module's own shuffled, bucketed loader (a new batch order each epoch),
and reports the RSS and the peak RSS at the end of every epoch. The goal: growth per epoch
(least-squares slope of the end-of-epoch RSS from the second epoch on) under 2 % of the first
epoch's peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from .memory import finish, peak_rss_mb, rss_mb

GROWTH_GOAL = 0.02  # of the first epoch's peak, per epoch


def start(manifest: Path, cache_dir: Path, epochs: int, max_frames_per_batch: int | None = None,
          default_malloc: bool = False):
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.memory_epochs", "--manifest", str(manifest), "--cache-dir", str(cache_dir),
           "--epochs", str(epochs)] + (["--max-frames-per-batch", str(max_frames_per_batch)] if max_frames_per_batch else [])
    return subprocess.Popen(cmd + (["--default-malloc"] if default_malloc else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(manifest: Path, cache_dir: Path, epochs: int, max_frames_per_batch: int | None = None,
            default_malloc: bool = False) -> dict:
    report = finish(start(manifest, cache_dir, epochs, max_frames_per_batch, default_malloc), timeout_s=3600)
    return report | growth(report["per_epoch"])


def growth(per_epoch: list[dict]) -> dict:
    """Slope of the end-of-epoch RSS (MiB per epoch, epochs 2..N; all of them when fewer than
    three) and its share of the first epoch's peak."""
    rss = [e["rss_mb"] for e in per_epoch]
    tail = rss[1:] if len(rss) >= 3 else rss
    slope = float(np.polyfit(np.arange(len(tail), dtype=float), np.asarray(tail, float), 1)[0]) if len(tail) > 1 else 0.0
    first_peak = per_epoch[0]["peak_rss_mb"]
    return {"growth_mb_per_epoch": round(slope, 1), "growth_share_of_first_peak": slope / first_peak}


def _child(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--max-frames-per-batch", type=int, default=None)
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc as it is")
    args = ap.parse_args(argv)
    from ser_fcn.utils.allocator import configure_allocator

    configured = False if args.default_malloc else configure_allocator()
    import lightning as L

    from ser_fcn.data.datamodule import SERDataModule
    from ser_fcn.corpora.iemocap import PAPER_CLASSES
    from ser_fcn.models import FCNAttention
    from ser_fcn.training.module import SERModule

    warnings.filterwarnings("ignore")
    extra = {"max_frames_per_batch": args.max_frames_per_batch} if args.max_frames_per_batch else {}
    dm = SERDataModule(manifest=args.manifest, cache_dir=args.cache_dir, classes=list(PAPER_CLASSES), progress=False, **extra)
    per_epoch: list[dict] = []

    class EpochProbe(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            per_epoch.append({"epoch": trainer.current_epoch, "rss_mb": round(rss_mb(), 1), "peak_rss_mb": round(peak_rss_mb(), 1)})

    module = SERModule(net=FCNAttention(num_classes=4), num_classes=4, n_bins=dm.spec.n_bins, class_names=dm.classes)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[EpochProbe()])
    trainer.fit(module, datamodule=dm)
    print(json.dumps({"allocator_configured": configured, "epochs": args.epochs, "per_epoch": per_epoch,
                      "train_utterances": len(dm.datasets["train"]), "max_frames_per_batch": dm.hparams.max_frames_per_batch}))


if __name__ == "__main__":
    _child(sys.argv[1:])
