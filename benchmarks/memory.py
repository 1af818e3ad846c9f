"""Goal 5: peak resident memory of training on an IEMOCAP-sized corpus, in a fresh process.

The child process (`python -m benchmarks.memory ...`) runs the real thing: SERDataModule
on the synthetic cached corpus (manifest, fold 1, training statistics over every training
utterance, the bucketed loader), SERModule + FCNAttention and a Lightning Trainer on the CPU.
A whole epoch takes far longer than the bench may on a 2-core CPU, so it runs the epoch's
batches heaviest first (the few with the most padded frames, the longest and the widest,
then the rest in the epoch's order) until `--batches` or `--time-budget`. It reports the
process's peak RSS (VmHWM; see `peak_rss_mb`) and, after imports, setup and each batch, the RSS and the
peak so far, so a reader sees which batch set the peak and whether it had levelled off.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:  # MiB, as peak_rss_mb
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def heavy_first(plan: list[list[int]], lengths, k: int = 4) -> list[list[int]]:
    """The plan's batches reordered: the k with most padded frames, the k longest, the k
    widest (largest batch), then all the others in plan order."""
    def padded(b):
        return len(b) * max(lengths[i] for i in b)

    def longest(b):
        return max(lengths[i] for i in b)

    first: list[int] = []
    for key in (padded, longest, len):
        for i in sorted(range(len(plan)), key=lambda i: key(plan[i]), reverse=True)[:k]:
            if i not in first:
                first.append(i)
    return [plan[i] for i in first] + [b for i, b in enumerate(plan) if i not in set(first)]


def peak_rss_mb() -> float:
    """This process's own peak RSS, MiB: VmHWM of /proc/self/status (getrusage where there is no /proc).

    Not getrusage's ru_maxrss: Linux keeps in it the peak of the memory a process had before
    its exec, and a child started by `subprocess` (vfork + exec) gets the PARENT's peak there.
    Every bench child would then report at least the bench process's own peak, which is what
    took the one-hour timeline to 2.28 GB inside `make bench` (1.4 GB alone)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def drift_mb_per_batch(report: dict) -> float:
    """Least-squares slope of the after-batch RSS over the second half of the batches run."""
    rss = [b["rss_mb"] for b in report["per_batch"]]
    half = rss[len(rss) // 2 :]
    if len(half) < 2:
        return 0.0
    x = np.arange(len(half), dtype=float)
    return float(np.polyfit(x, np.asarray(half, dtype=float), 1)[0])


def start(
    manifest: Path, cache_dir: Path, batches: int, time_budget_s: float, max_frames_per_batch: int | None = None
) -> subprocess.Popen:
    """Launch the child; `finish` collects its report."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--manifest", str(manifest), "--cache-dir", str(cache_dir),
           "--batches", str(batches), "--time-budget", str(time_budget_s)]
    if max_frames_per_batch:
        cmd += ["--max-frames-per-batch", str(max_frames_per_batch)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout_s: float = 900) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child failed (rc {proc.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return json.loads(lines[-1])


def measure(manifest: Path, cache_dir: Path, batches: int, time_budget_s: float, max_frames_per_batch: int | None = None) -> dict:
    return finish(start(manifest, cache_dir, batches, time_budget_s, max_frames_per_batch))


def _child(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--time-budget", type=float, default=300.0)
    ap.add_argument("--max-frames-per-batch", type=int, default=None, help="default: SERDataModule's")
    ap.add_argument("--cache-dtype", default=None, help="default: SERDataModule's (the cache must hold this dtype)")
    args = ap.parse_args(argv)
    from ser_fcn.utils.allocator import configure_allocator

    configured = configure_allocator()  # as `python -m ser_fcn` does
    t_start = time.perf_counter()
    rss_start = rss_mb()

    import warnings

    import lightning as L
    from torch.utils.data import DataLoader

    from ser_fcn.data.datamodule import SERDataModule
    from ser_fcn.corpora.iemocap import PAPER_CLASSES
    from ser_fcn.models import FCNAttention
    from ser_fcn.training.module import SERModule

    warnings.filterwarnings("ignore")
    rss_imports = rss_mb()
    kw = {"max_frames_per_batch": args.max_frames_per_batch} if args.max_frames_per_batch else {}
    if args.cache_dtype:
        kw["cache_dtype"] = args.cache_dtype
    dm = SERDataModule(manifest=args.manifest, cache_dir=args.cache_dir, classes=list(PAPER_CLASSES), progress=False, **kw)
    dm.prepare_data()
    dm.setup("fit")
    rss_setup = rss_mb()
    train = dm.datasets["train"]
    n_bins = dm.spec.n_bins
    per_batch: list[dict] = []

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            per_batch.append({"batch": batch_idx, "shape": list(batch["x"].shape), "rss_mb": round(rss_mb(), 1),
                              "peak_rss_mb": round(peak_rss_mb(), 1)})
            if time.perf_counter() - t_fit > args.time_budget:
                trainer.should_stop = True

    # the epoch's batches, heaviest first (see the module doc)
    loader = dm.train_dataloader()
    order = heavy_first(loader.batch_sampler.plan(0), train.lengths)
    dm.train_dataloader = lambda: DataLoader(train, batch_sampler=order, collate_fn=loader.collate_fn)

    module = SERModule(net=FCNAttention(num_classes=4), num_classes=4, n_bins=n_bins, class_names=dm.classes)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_train_batches=args.batches,
        limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[Probe()],
    )
    t_fit = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    lengths = train.lengths
    itemsize = 2 if dm.hparams.cache_dtype == "float16" else 4
    print(json.dumps({
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "allocator_configured": configured,
        "rss_mb": {"start": round(rss_start, 1), "after_imports": round(rss_imports, 1), "after_setup": round(rss_setup, 1)},
        "per_batch": per_batch,
        "batches_run": len(per_batch),
        "batches_per_epoch": len(order),
        "order": "heaviest first: most padded frames, longest, widest; then the epoch's order",
        "train_utterances": len(train),
        "utterances": len(dm.rows),
        "max_frames_per_batch": dm.hparams.max_frames_per_batch,
        "cache_dtype": dm.hparams.cache_dtype,
        "train_features_if_held_in_ram_mb": round(sum(lengths) * n_bins * itemsize / 2**20, 1),
        "train_features_float32_mb": round(sum(lengths) * n_bins * 4 / 2**20, 1),
        "fit_seconds": round(time.perf_counter() - t_fit, 1),
        "child_seconds": round(time.perf_counter() - t_start, 1),
    }))


if __name__ == "__main__":
    _child(sys.argv[1:])
