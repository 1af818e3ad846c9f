"""`python -m benchmarks [--quick] [--gpu] [--out DIR]`: measure, print the table, write the files.

Exit status: 0 when every goal is met, 1 when one is missed (a crash also exits non-zero,
with a traceback and without writing the results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_fcn.data.sampler import MAX_FRAMES_PER_BATCH, NUM_BUCKETS
from ser_fcn.utils import atomic
from ser_fcn.utils.machine import cpu_flags, cpu_model

from . import corpus, features, gpu, memory, memory_epochs, padding, timeline, training


@dataclass(frozen=True)
class Sizes:
    utterances: int
    length_scale: float  # frame lengths are scaled by this (quick: short utterances)
    max_frames_per_batch: int | None  # None: SERDataModule's default
    rounds: int  # interleaved training rounds (one bucketed + one random batch + one reference pass each)
    ref_frames: int  # T of the dense reference; B = budget // T
    wav_files: int
    feature_repeats: int
    memory_utterances: int
    memory_batches: int  # at most (an epoch has fewer at full size: all of them, time allowing)
    memory_time_budget_s: float  # of training in the memory child
    loader_time_budget_s: float
    growth_utterances: int  # corpus of the memory-per-epoch child (fold 1 trains on 4/5 of it)
    growth_epochs: int


FULL = Sizes(2900, 1.0, None, 12, 500, 48, 3, 2900, 400, 300.0, 60.0, 300, 5)
QUICK = Sizes(80, 0.25, 1200, 1, 300, 3, 1, 40, 1, 20.0, 5.0, 40, 2)


def machine() -> dict:
    import torch

    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    return {
        "cpu": cpu_model(),
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "fma"}),
        "logical_cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda_available": torch.cuda.is_available(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def to_json(r: dict) -> str:
    """Indented JSON with every list of plain values, and every small flat object, on one line."""
    text = json.dumps(r, indent=2, default=float)
    one_line = lambda m: m.group(1) + re.sub(r"\n\s*", " ", m.group(2)).strip() + m.group(3)  # noqa: E731
    text = re.sub(r"(\[)([^\[\]{}\"]*?)(\])", one_line, text)  # lists of numbers
    text = re.sub(r"(\{)([^{}]{0,200}?)(\})", one_line, text)  # flat objects (a batch of the memory trace)
    return text + "\n"


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@dataclass(frozen=True)
class Goal:
    """One row of the goal table: the figure read from the results, its target, how it reads."""

    id: str
    text: str
    value: Callable[[dict], float]
    target: float
    at_most: bool  # True: the value must stay <= target (padding, memory); False: reach >= target
    measured: Callable[[dict], str]  # the table's "measured" cell


def _memory_gb(r: dict) -> float:
    return r["memory"]["peak_rss_mb"] * 2**20 / 1e9  # MiB (VmHWM); the goal is in GB (10^9 bytes)


GOALS = [
    Goal("padding", "bucketed padding <= 5 % of cells (one epoch)", lambda r: r["padding"]["bucketed_padding"], 0.05, True,
         lambda r: f"{_fmt_pct(r['padding']['bucketed_padding'])} (random batches of {r['padding']['random_batch_size']}: "
                   f"{_fmt_pct(r['padding']['random_padding'])})"),
    Goal("throughput", "training valid frames/s, bucketed / random >= 1.5x", lambda r: r["training"]["throughput_ratio"], 1.5, False,
         lambda r: f"{r['training']['throughput_ratio']:.2f}x ({r['training']['bucketed']['valid_frames_per_s']:.0f} vs "
                   f"{r['training']['random']['valid_frames_per_s']:.0f} frames/s)"),
    Goal("compute_efficiency", "step conv FLOP/s / dense conv FLOP/s >= 0.6", lambda r: r["training"]["compute_efficiency"], 0.6, False,
         lambda r: f"{r['training']['compute_efficiency']:.2f} ({r['training']['bucketed']['conv_flop_per_s'] / 1e9:.1f} vs "
                   f"{r['training']['reference']['conv_flop_per_s'] / 1e9:.1f} GFLOP/s)"),
    Goal("cache_rtf", "feature cache build >= 300x real time", lambda r: r["features"]["cache"]["rtf"], 300, False,
         lambda r: f"{r['features']['cache']['rtf']:.0f}x ({r['features']['cache']['audio_seconds']:.0f} s of audio in "
                   f"{r['features']['cache']['audio_seconds'] / r['features']['cache']['rtf']:.2f} s)"),
    Goal("loader", "loader frames/s >= 10x training frames/s", lambda r: r["features"]["loader_over_training"], 10, False,
         lambda r: f"{r['features']['loader_over_training']:.0f}x ({r['features']['loader']['frames_per_s']:.0f} vs "
                   f"{r['training']['bucketed']['valid_frames_per_s']:.0f} frames/s)"),
    Goal("memory", "peak RSS of a training epoch < 3 GB", _memory_gb, 3.0, True,
         lambda r: f"{_memory_gb(r):.2f} GB ({r['memory']['batches_run']} of {r['memory']['batches_per_epoch']} batches, heaviest "
                   f"first; {r['memory']['utterances']} utterances, {r['memory']['cache_dtype']} cache)"),
    Goal("memory_growth", "RSS growth per training epoch < 2 % of the first epoch's peak",
         lambda r: r["memory_epochs"]["growth_share_of_first_peak"], memory_epochs.GROWTH_GOAL, True,
         lambda r: f"{_fmt_pct(r['memory_epochs']['growth_share_of_first_peak'])} ({r['memory_epochs']['growth_mb_per_epoch']:+.1f} MiB "
                   f"an epoch; end-of-epoch RSS " + ", ".join(f"{e['rss_mb']:.0f}" for e in r["memory_epochs"]["per_epoch"]) + " MiB)"),
    Goal("timeline_rtf", "predict --timeline, 1 h file, 2 threads: >= 100x real time", lambda r: r["timeline"]["rtf"], 100, False,
         lambda r: f"{r['timeline']['rtf']:.0f}x ({r['timeline']['audio_seconds']:.0f} s in {r['timeline']['wall_seconds']:.1f} s; "
                   f"load {r['timeline']['load_average_start']})"),
    Goal("timeline_memory", "predict --timeline, 1 h file: peak RSS < 2 GB",
         lambda r: r["timeline"]["peak_rss_mb"] * 2**20 / 1e9, 2.0, True,
         lambda r: f"{r['timeline']['peak_rss_mb'] * 2**20 / 1e9:.2f} GB"),
]


def _gpu_row(g: dict) -> dict:
    if g.get("measured"):
        measured = f"fp32 {g['fp32']['epoch_seconds']:.1f} s, bf16 {g['bf16']['epoch_seconds']:.1f} s per epoch ({g['device']})"
    else:
        measured = g["reason"]
    return {"id": "gpu", "goal": "GPU epoch time, bf16 and fp32 (no target)", "measured": measured, "value": None, "target": None, "ok": None}


def goal_rows(r: dict) -> list[dict]:
    """(goal, measured, ok) rows; `value`/`target` for the JSON."""
    rows = []
    for goal in GOALS:
        value = goal.value(r)
        ok = value <= goal.target if goal.at_most else value >= goal.target
        rows.append({"id": goal.id, "goal": goal.text, "measured": goal.measured(r), "value": value, "target": goal.target, "ok": ok})
    return rows + [_gpu_row(r["gpu"])]


def table(rows: list[dict]) -> str:
    mark = {True: "ok", False: "MISSED", None: "-"}
    lines = ["| goal | measured | ok? |", "| --- | --- | --- |"]
    lines += [f"| {r['goal']} | {r['measured']} | {mark[r['ok']]} |" for r in rows]
    return "\n".join(lines)


def markdown(r: dict, rows: list[dict]) -> str:
    m, t, f, mem, p = r["machine"], r["training"], r["features"], r["memory"], r["padding"]
    mem_slope = memory.drift_mb_per_batch(mem)
    trace = mem["per_batch"][:: max(1, len(mem["per_batch"]) // 12)]
    coverage = (f"all {mem['batches_per_epoch']} batches of the epoch" if mem["batches_run"] >= mem["batches_per_epoch"] else
                f"{mem['batches_run']} of the epoch's {mem['batches_per_epoch']} batches (what the time budget allowed)")
    out = [
        "# ser_fcn performance (`make bench`)",
        "",
        f"Run {r['started']} on {m['cpu']} ({m['cores_usable']} cores usable, {m['memory_gb']} GB), "
        f"torch {m['torch']} ({m['torch_threads']} threads), python {m['python']}; "
        f"{'--quick sizes (smoke test, not the goals)' if r['quick'] else 'full sizes'}; bench wall time {r['wall_seconds'] / 60:.1f} min. "
        f"Load average {r['load_average']['start']} at the start, {r['load_average']['end']} at the end "
        "(the machine is shared: every goal is a ratio of two things measured in the same run, interleaved where it matters).",
        "",
        table(rows),
        "",
        "## How each figure is obtained",
        "",
        f"Lengths: {p['lengths']['n_utterances']} synthetic utterances, lognormal (median {p['lengths']['median_s']} s, mean "
        f"{p['lengths']['mean_s']} s, longest {p['lengths']['max_s']} s, {_fmt_pct(p['lengths']['share_1_to_10_s'])} within 1-10 s), "
        "100 frames/s, like IEMOCAP's improvised set.",
        "",
        f"1. **Padding**: `padding_fraction` of epoch 0's plan. Bucketed: SERDataModule defaults, "
        f"max_frames_per_batch={p['max_frames_per_batch']}, num_buckets={p['num_buckets']} ({p['bucketed_batches']} batches); "
        f"random: `RandomBatchSampler`, batches of {p['random_batch_size']} ({p['random_batches']} batches).",
        f"2. **Throughput**: valid (unpadded) frames per second of the full training step (`SERModule.training_step`, backward, "
        f"Adam) over {t['rounds']} bucketed and {t['rounds']} random batches, interleaved, sampled systematically from one "
        f"epoch's plan of each. Random batches of {t['random_batch_size']} hold as many padded frames on average as the bucketed "
        f"ones ({t['mean_padded_frames_per_batch']['random']:.0f} vs {t['mean_padded_frames_per_batch']['bucketed']:.0f}): "
        f"the same frame budget. Padding of the samples: bucketed {_fmt_pct(t['bucketed']['sample_padding'])} "
        f"(epoch {_fmt_pct(t['epoch_padding']['bucketed'])}), random {_fmt_pct(t['random']['sample_padding'])} "
        f"(epoch {_fmt_pct(t['epoch_padding']['random'])}). Padded frames/s: bucketed "
        f"{t['bucketed']['padded_frames_per_s']:.0f}, random {t['random']['padded_frames_per_s']:.0f}.",
        f"3. **Compute efficiency**: convolution FLOPs of the real batch shapes, forward + backward "
        f"(`FlopCounterMode` on meta-device copies) per second of the bucketed training steps, over the FLOP/s of the same five "
        f"conv layers alone, forward + backward, on a fixed dense batch {tuple(t['reference']['shape'])}, run once per round "
        f"between the steps. conv1's input gradient is neither computed nor counted in either. "
        f"Random batches reach {t['compute_efficiency_random']:.2f} of the reference.",
        f"4. **Features**: `FeatureCache.ensure` on a fresh cache over {f['cache']['files']} synthetic 16 kHz wavs "
        f"({f['cache']['audio_seconds']:.0f} s of audio), median of {len(f['cache']['wall_seconds'])}; the same with one worker: "
        f"{f['cache']['one_worker_rtf']:.0f}x. Loader: SERDataModule's train DataLoader (bucketed sampler, pad_collate, "
        f"num_workers={f['loader']['num_workers']}, {f['loader']['cache_dtype']} cache) over {f['loader']['batches']} batches "
        f"of the IEMOCAP-sized cached corpus below (page cache warm, as from epoch 2 on): "
        f"{f['loader']['frames_per_s']:.0f} valid frames/s, against the bucketed training throughput of item 2.",
        f"5. **Memory**: a fresh process runs SERDataModule (manifest of {mem['utterances']} utterances, fold 1: "
        f"{mem['train_utterances']} training utterances; training statistics over all of them) and a Lightning Trainer with "
        f"SERModule + FCNAttention on the CPU over {coverage}, heaviest first (most padded frames, longest, widest, then "
        f"the epoch's order). The features were written straight into the cache (random values, real shapes, no audio). "
        f"Peak RSS (VmHWM) {mem['peak_rss_mb']:.0f} MiB; RSS after imports {mem['rss_mb']['after_imports']:.0f} MiB, "
        f"after setup {mem['rss_mb']['after_setup']:.0f} MiB, after batches "
        f"{', '.join(str(b['batch'] + 1) for b in trace)}: {', '.join(str(int(b['rss_mb'])) for b in trace)} MiB "
        f"(a drift of {mem_slope:+.1f} MiB a batch over the second half of the run; glibc's mmap threshold "
        f"{'fixed by ser_fcn.utils.allocator, as `python -m ser_fcn` does' if mem.get('allocator_configured') else 'left at its default'}). "
        f"Every batch is capped at "
        f"{mem['max_frames_per_batch']} padded frames. The loader reads each utterance "
        f"from the cache when its batch is built, so the cache dtype sets disk and page cache, not RSS: the whole training "
        f"split would take {mem['train_features_if_held_in_ram_mb']:.0f} MiB in {mem['cache_dtype']} "
        f"({mem['train_features_float32_mb']:.0f} MiB in float32) even if it were held in memory.",
        f"6. **GPU**: {r['gpu'].get('reason') or 'see bench.json'}.",
        f"7. **Timeline**: {timeline.__doc__.split(chr(10), 2)[2].strip()} {r['timeline']['windows']} windows.",
        f"8. **Memory over epochs**: {' '.join(memory_epochs.__doc__.split(chr(10), 2)[2].split())} Here: "
        f"{r['memory_epochs']['train_utterances']} training utterances, {r['memory_epochs']['epochs']} epochs, end-of-epoch RSS "
        f"{', '.join(str(int(e['rss_mb'])) for e in r['memory_epochs']['per_epoch'])} MiB, peaks "
        f"{', '.join(str(int(e['peak_rss_mb'])) for e in r['memory_epochs']['per_epoch'])} MiB.",
    ]
    if t.get("profile_top_ops"):
        conv = sum(o["share"] for o in t["profile_top_ops"] if "convolution" in o["op"])
        out += ["", "## Where a bucketed training step's time goes (torch.profiler, self CPU time)", "",
                f"Convolutions (forward `mkldnn_convolution`, backward `convolution_backward`) take {_fmt_pct(conv)} of one "
                "profiled step; the rest is LRN, pooling, ReLU, the length masks, the attention head and Adam.", "",
                "| op | calls | ms | share |", "| --- | --- | --- | --- |"]
        out += [f"| `{o['op']}` | {o['calls'] if o['calls'] is not None else ''} | {o['self_ms']} | {_fmt_pct(o['share'])} |"
                for o in t["profile_top_ops"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the code, not of the goals")
    ap.add_argument("--gpu", action="store_true", help="also time a five-fold-sized epoch on CUDA, fp32 and bf16")
    ap.add_argument("--out", default=None, help="folder for bench.md / bench.json (default: results/, or a temp folder with --quick)")
    ap.add_argument("--no-profile", action="store_true", help="skip the torch.profiler table of one training step")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    out_dir = Path(args.out or (Path(tempfile.gettempdir()) / "ser_fcn_bench_quick" if args.quick else "results"))

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    r: dict = {"started": started, "quick": args.quick, "machine": machine()}

    phases: dict[str, float] = {}
    t_phase = [time.perf_counter()]

    def log(msg: str) -> None:
        print(msg, flush=True)

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - t_phase[0], 1)
        t_phase[0] = now

    with tempfile.TemporaryDirectory(prefix="ser_fcn_bench_corpus_") as tmp:
        # an IEMOCAP-sized corpus already in the feature cache, for the loader and the memory run
        mem_lengths = np.maximum(1, (corpus.frame_lengths(sizes.memory_utterances, seed=2) * sizes.length_scale).astype(np.int64))
        manifest, cache_dir = corpus.synthetic_cached_corpus(Path(tmp), mem_lengths)
        mem_args = (manifest, cache_dir, sizes.memory_batches, sizes.memory_time_budget_s, sizes.max_frames_per_batch)
        log(f"synthetic cached corpus: {len(mem_lengths)} utterances in {time.perf_counter() - t_start:.1f} s")
        phase("synthetic_corpus")

        cap, nb = sizes.max_frames_per_batch or MAX_FRAMES_PER_BATCH, NUM_BUCKETS
        lengths = np.maximum(1, (corpus.frame_lengths(sizes.utterances) * sizes.length_scale).astype(np.int64))

        log(f"[1/6] padding: {len(lengths)} utterances, cap {cap} frames, {nb} buckets")
        r["padding"] = padding.measure(lengths, cap, nb) | {"lengths": corpus.describe_lengths(lengths)}
        phase("padding")

        log(f"[2-3/6] training throughput and compute efficiency: {sizes.rounds} interleaved rounds")
        r["training"] = training.measure(lengths, cap, nb, rounds=sizes.rounds, ref_frames=sizes.ref_frames,
                                         profile=not args.no_profile, log=log)
        phase("training")

        log("[4/6] feature cache build and data loader")
        durations = corpus.durations_s(sizes.wav_files, seed=1) * (1.0 if not args.quick else 0.3)
        r["features"] = {"cache": features.cache_build_rtf(durations, repeats=sizes.feature_repeats)}
        phase("cache_build")
        r["features"]["loader"] = features.loader_frames_per_s(manifest, cache_dir, time_budget_s=sizes.loader_time_budget_s)
        r["features"]["loader_over_training"] = r["features"]["loader"]["frames_per_s"] / r["training"]["bucketed"]["valid_frames_per_s"]
        phase("loader")

        log(f"[5/6] memory: training in a fresh process, heaviest batches first, for up to {sizes.memory_time_budget_s:.0f} s")
        r["memory"] = memory.measure(*mem_args)
        phase("memory")
        log(f"[5b/6] memory over {sizes.growth_epochs} whole epochs of {sizes.growth_utterances} utterances, fresh process")
        growth_lengths = np.maximum(1, (corpus.frame_lengths(sizes.growth_utterances, seed=3) * sizes.length_scale).astype(np.int64))
        growth_manifest, growth_cache = corpus.synthetic_cached_corpus(Path(tmp) / "growth", growth_lengths)
        r["memory_epochs"] = memory_epochs.measure(growth_manifest, growth_cache, sizes.growth_epochs, sizes.max_frames_per_batch)
        phase("memory_epochs")
        log("[timeline] predict --timeline on a one-hour file (--quick: one minute), fresh process")
        r["timeline"] = timeline.measure(60.0 if args.quick else 3600.0)
        phase("timeline")

    log("[6/6] GPU")
    if args.gpu:
        r["gpu"] = gpu.measure(corpus.frame_lengths(corpus.IEMOCAP_IMPROVISED_UTTERANCES), MAX_FRAMES_PER_BATCH, nb, log=log)
    else:
        r["gpu"] = {"measured": False, "reason": gpu.status() or "not measured: run with --gpu"}

    phase("gpu")
    r["phase_seconds"] = phases
    r["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    r["load_average"] = {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    rows = goal_rows(r)
    r["goals"] = {row["id"]: {k: row[k] for k in ("goal", "measured", "value", "target", "ok")} for row in rows}
    r["all_goals_met"] = all(row["ok"] is not False for row in rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "bench.json", to_json(r))
    atomic.write_text(out_dir / "bench.md", markdown(r, rows))
    print()
    print(table(rows))
    print(f"\nwrote {out_dir / 'bench.md'} and {out_dir / 'bench.json'} ({r['wall_seconds'] / 60:.1f} min)")
    if not r["all_goals_met"]:
        missed = ", ".join(row["id"] for row in rows if row["ok"] is False)
        print(f"goal(s) missed: {missed}", file=sys.stderr)
        return 1
    return 0
