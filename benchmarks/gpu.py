"""Goal 6 (no target): one training epoch of FCN+attention on a CUDA GPU, fp32 and bf16.

"Five-fold-sized": the epoch is one fold's training split of the IEMOCAP-sized synthetic
corpus (4 of 5 sessions, about 2,320 utterances), bucketed with SERDataModule's defaults;
a five-fold cross-validation runs five of these per epoch. Features are random numbers of
the real shapes, made on the GPU (so the host loader is not what is timed). The step is
SERModule's training step + Adam, as on the CPU; bf16 is autocast (Lightning's
"bf16-mixed"). Each precision gets a warm-up pass over a few batches first.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .padding import bucket_sampler
from .training import N_BINS, N_CLASSES, build_module

NOT_LENT = "not measured: no GPU lent to this task"


def status() -> str | None:
    """None if a CUDA device can be measured, else the reason it cannot."""
    if not torch.cuda.is_available():
        return f"{NOT_LENT} (torch.cuda.is_available() is False)"
    return None


def measure(
    lengths: np.ndarray, max_frames_per_batch: int, num_buckets: int, warmup_batches: int = 5, log=print, device: str = "cuda"
) -> dict:
    """`device` other than cuda only to try the code path (e.g. "cpu" with a few lengths)."""
    dev = torch.device(device)
    reason = status() if dev.type == "cuda" else None
    if reason:
        return {"measured": False, "reason": reason}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    train = lengths[np.arange(len(lengths)) % 5 != 0]  # 4 of 5 sessions
    plan = bucket_sampler(train, max_frames_per_batch, num_buckets).plan(0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    out = {"measured": True, "device": name, "utterances": len(train), "batches": len(plan),
           "frames": int(train.sum()), "max_frames_per_batch": max_frames_per_batch}
    for precision in ("fp32", "bf16"):
        module, opt = build_module()
        module.to(dev)
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")

        def step(idx):
            lens = torch.as_tensor(train[idx], device=dev)
            x = torch.randn(len(idx), 1, N_BINS, int(lens.max()), device=dev)
            x = x * (torch.arange(x.shape[-1], device=dev) < lens[:, None])[:, None, None, :]
            batch = {"x": x, "lengths": lens, "y": torch.randint(0, N_CLASSES, (len(idx),), device=dev), "ids": [""] * len(idx)}
            with autocast:
                loss = module.training_step(batch, 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for idx in plan[:warmup_batches]:
                step(idx)
            sync()
            t0 = time.perf_counter()
            for idx in plan:
                step(idx)
            sync()
        secs = time.perf_counter() - t0
        out[precision] = {"epoch_seconds": round(secs, 2), "valid_frames_per_s": int(train.sum()) / secs}
        log(f"  {name} {precision}: {secs:.1f} s per epoch")
        del module, opt
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    out["bf16_speedup"] = out["fp32"]["epoch_seconds"] / out["bf16"]["epoch_seconds"]
    return out
