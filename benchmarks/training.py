"""Goals 2 and 3: training throughput (bucketed vs random batches) and compute efficiency.

One interleaved loop measures both. Each round runs one bucketed batch, one random batch
(in alternating order) and one pass of the dense reference, so a change in the machine's
load during the run falls on all three alike.

The training step is the project's: `SERModule.training_step` (input normalisation, the
finite checks, the loss and the metrics) around `FCNAttention`, then backward and the
optimiser that `SERModule.configure_optimizers` makes by default (Adam, lr 1e-4).

Batches: a systematic sample of one epoch's plan of each sampler (the plan's batches sorted
by padding share, then every k-th), so the sample pads like the whole epoch; their
features are random numbers of the real shapes, collated by the project's `pad_collate`.
The random sampler's batch size is chosen so that its batches hold as many padded frames
on average as the bucketed ones (the same frame budget: what memory and compute see).

Compute efficiency: convolution FLOPs of the real batch shapes (forward + backward, counted
by `torch.utils.flop_counter.FlopCounterMode` on meta-device copies, so counting costs no
compute) per second of the whole training step, divided by the FLOP/s of the same five
conv layers run alone, forward + backward, on one fixed dense shape of the same frame
budget. conv1's input gradient is neither computed nor counted in either (the
spectrogram needs none).
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ser_fcn.data.collate import pad_collate
from ser_fcn.data.features import SpectrogramConfig
from ser_fcn.corpora.iemocap import PAPER_CLASSES
from ser_fcn.data.sampler import BucketBatchSampler, RandomBatchSampler

N_BINS = SpectrogramConfig().n_bins
N_CLASSES = len(PAPER_CLASSES)


def _padded(batch_idx: list[int], lengths: np.ndarray) -> int:
    return len(batch_idx) * int(lengths[batch_idx].max())


def random_batch_size_for_budget(lengths: np.ndarray, padded_per_batch: float) -> int:
    """Batch size whose random batches hold, on average, `padded_per_batch` padded frames."""
    best, best_gap = 1, float("inf")
    for b in range(1, min(len(lengths), 256) + 1):
        plan = RandomBatchSampler(lengths, b, seed=0, num_replicas=1, rank=0).plan(0)
        mean = float(np.mean([_padded(x, lengths) for x in plan]))
        if abs(mean - padded_per_batch) < best_gap:
            best, best_gap = b, abs(mean - padded_per_batch)
        if mean > 1.5 * padded_per_batch:
            break
    return best


def systematic_sample(plan: list[list[int]], lengths: np.ndarray, k: int) -> list[list[int]]:
    """`k` batches of `plan` at evenly spaced quantiles of their padding share."""
    def pad_share(b):
        return 1 - lengths[b].sum() / _padded(b, lengths)

    order = sorted(range(len(plan)), key=lambda i: (pad_share(plan[i]), _padded(plan[i], lengths)))
    picks = [order[min(len(order) - 1, int((j + 0.5) * len(order) / k))] for j in range(k)]
    return [plan[i] for i in picks]


def make_batch(idx: list[int], lengths: np.ndarray, pool: torch.Tensor, rng: np.random.Generator) -> dict:
    items = []
    for i in idx:
        n = int(lengths[i])
        start = int(rng.integers(0, pool.shape[1] - n + 1))
        items.append({"features": pool[:, start : start + n], "label": int(rng.integers(N_CLASSES)), "utt_index": i, "utterance_id": f"u{i}"})
    return pad_collate(items)


def conv_flops(net: nn.Module, batch: dict) -> int:
    """Convolution FLOPs (forward + backward) of one training step on `batch`'s shapes."""
    meta = copy.deepcopy(net).to("meta")
    x = torch.empty(batch["x"].shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        logits, _ = meta(x, batch["lengths"].to("meta"))
        logits.sum().backward()
    counts = counter.get_flop_counts()["Global"]
    return int(sum(v for k, v in counts.items() if "convolution" in str(k)))


class DenseConvReference:
    """The net's conv layers alone, each on the input shape it sees in a dense (B, 1, F, T)
    batch, forward + backward. Inputs of conv2..conv5 need a gradient (as in training)."""

    def __init__(self, net: nn.Module, batch_size: int, n_frames: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        layers = list(net.encoder.features)
        self.shape = (batch_size, 1, N_BINS, n_frames)
        self.convs, self.inputs, self.grads = [], [], []
        h = torch.randn(self.shape, generator=g)
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, nn.Conv2d):
                    conv = copy.deepcopy(layer)
                    out = conv(h)
                    self.convs.append(conv)
                    self.inputs.append(h.clone().requires_grad_(len(self.convs) > 1))
                    self.grads.append(torch.randn(out.shape, generator=g))
                h = layer(h)
        with FlopCounterMode(display=False) as counter:
            self.run()
        self.flops = int(sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k)))

    def run(self) -> None:
        for conv, x, g in zip(self.convs, self.inputs, self.grads):
            conv.zero_grad(set_to_none=True)
            x.grad = None
            conv(x).backward(g)


def build_module(seed: int = 0):
    from ser_fcn.models import FCNAttention
    from ser_fcn.training.module import SERModule

    torch.manual_seed(seed)
    module = SERModule(net=FCNAttention(num_classes=N_CLASSES), num_classes=N_CLASSES, n_bins=N_BINS)
    module.train()
    return module, module.configure_optimizers()


def profile_step(step, batch: dict, top: int = 12) -> list[dict]:
    """Top ops by self CPU time in one training step (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(batch)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 1), "share": round(e.self_cpu_time_total / total, 3)}
        for e in events[:top]
    ] + [{"op": "(total)", "calls": None, "self_ms": round(total / 1e3, 1), "share": 1.0}]


def measure(
    lengths: np.ndarray,
    max_frames_per_batch: int,
    num_buckets: int,
    rounds: int,
    ref_frames: int = 500,
    profile: bool = True,
    seed: int = 0,
    log=print,
) -> dict:
    rng = np.random.default_rng(seed)
    bucket = BucketBatchSampler(lengths, max_frames_per_batch, num_buckets=num_buckets, seed=seed, num_replicas=1, rank=0)
    bucket_plan = bucket.plan(0)
    budget = float(np.mean([_padded(b, lengths) for b in bucket_plan]))
    rand_bs = random_batch_size_for_budget(lengths, budget)
    rand = RandomBatchSampler(lengths, rand_bs, seed=seed, num_replicas=1, rank=0)
    rand_plan = rand.plan(0)

    pool = torch.from_numpy(rng.standard_normal((N_BINS, int(lengths.max()) + 1000)).astype(np.float32))
    samples = {
        "bucketed": [make_batch(b, lengths, pool, rng) for b in systematic_sample(bucket_plan, lengths, rounds)],
        "random": [make_batch(b, lengths, pool, rng) for b in systematic_sample(rand_plan, lengths, rounds)],
    }
    warm = {"bucketed": make_batch(bucket_plan[0], lengths, pool, rng), "random": make_batch(rand_plan[0], lengths, pool, rng)}

    module, opt = build_module(seed)

    def step(batch: dict) -> None:
        loss = module.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ref = DenseConvReference(module.net, max(1, max_frames_per_batch // ref_frames), ref_frames, seed)
    flops = {k: [conv_flops(module.net, b) for b in v] for k, v in samples.items()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() outside a Trainer
        step(warm["bucketed"])
        step(warm["random"])
        ref.run()
        times: dict[str, list[float]] = {"bucketed": [], "random": [], "reference": []}
        for i in range(rounds):
            for kind in ("bucketed", "random") if i % 2 == 0 else ("random", "bucketed"):
                t0 = time.perf_counter()
                step(samples[kind][i])
                times[kind].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref.run()
            times["reference"].append(time.perf_counter() - t0)
            log(
                f"  round {i + 1}/{rounds}: bucketed {times['bucketed'][-1]:.2f} s, random {times['random'][-1]:.2f} s, "
                f"dense conv reference {times['reference'][-1]:.2f} s"
            )
        top_ops = profile_step(step, samples["bucketed"][len(samples["bucketed"]) // 2]) if profile else None

    out: dict = {
        "rounds": rounds,
        "max_frames_per_batch": max_frames_per_batch,
        "num_buckets": num_buckets,
        "random_batch_size": rand_bs,
        "mean_padded_frames_per_batch": {"bucketed": round(budget, 1), "random": round(float(np.mean([_padded(b, lengths) for b in rand_plan])), 1)},
        "epoch_padding": {"bucketed": bucket.padding_fraction(0), "random": rand.padding_fraction(0)},
    }
    for kind in ("bucketed", "random"):
        valid = sum(int(b["lengths"].sum()) for b in samples[kind])
        padded = sum(b["x"].shape[0] * b["x"].shape[-1] for b in samples[kind])
        secs = sum(times[kind])
        out[kind] = {
            "steps": len(times[kind]),
            "seconds": round(secs, 3),
            "valid_frames": valid,
            "padded_frames": padded,
            "sample_padding": round(1 - valid / padded, 4),
            "valid_frames_per_s": valid / secs,
            "padded_frames_per_s": padded / secs,
            "conv_flops": sum(flops[kind]),
            "conv_flop_per_s": sum(flops[kind]) / secs,
            "step_seconds": [round(t, 3) for t in times[kind]],
        }
    ref_secs = float(np.sum(times["reference"]))
    out["reference"] = {
        "shape": list(ref.shape),
        "conv_flops_per_pass": ref.flops,
        "seconds": round(ref_secs, 3),
        "conv_flop_per_s": ref.flops * len(times["reference"]) / ref_secs,
        "pass_seconds": [round(t, 3) for t in times["reference"]],
    }
    out["throughput_ratio"] = out["bucketed"]["valid_frames_per_s"] / out["random"]["valid_frames_per_s"]
    out["compute_efficiency"] = out["bucketed"]["conv_flop_per_s"] / out["reference"]["conv_flop_per_s"]
    out["compute_efficiency_random"] = out["random"]["conv_flop_per_s"] / out["reference"]["conv_flop_per_s"]
    out["profile_top_ops"] = top_ops
    out["torch_threads"] = torch.get_num_threads()
    return out
