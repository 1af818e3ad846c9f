"""`python -m benchmarks --quick`: runs end to end and writes sane results (no timing asserts)."""

import json
import math
import subprocess
import sys

import pytest
from helpers import REPO

GOALS = {"padding", "throughput", "compute_efficiency", "cache_rtf", "loader", "memory", "memory_growth", "gpu", "timeline_rtf", "timeline_memory"}


@pytest.mark.slow  # a subprocess-heavy end-to-end run: `make test-slow` (CI runs it)
def test_quick_bench_writes_the_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO,  # benchmarks/ is a top-level folder, not installed
    )
    # 0: every goal met, 1: one missed (likely at --quick sizes); anything else is a crash
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "| goal | measured | ok? |" in proc.stdout
    md = (tmp_path / "bench.md").read_text()
    assert "| goal | measured | ok? |" in md and "--quick" in md
    r = json.loads((tmp_path / "bench.json").read_text())

    assert r["quick"] is True
    for key in ("cpu", "logical_cores", "torch"):
        assert r["machine"][key]
    assert set(r["goals"]) == GOALS
    assert (proc.returncode == 0) == r["all_goals_met"] == all(g["ok"] is not False for g in r["goals"].values())
    for name, g in r["goals"].items():
        if name == "gpu":
            continue
        assert isinstance(g["ok"], bool) and math.isfinite(g["value"]), (name, g)
        assert g["value"] > 0 or (name == "memory_growth" and g["value"] > -1), (name, g)  # memory may shrink

    p = r["padding"]
    assert 0 <= p["bucketed_padding"] < p["random_padding"] < 1
    t = r["training"]
    for kind in ("bucketed", "random"):
        assert t[kind]["valid_frames"] <= t[kind]["padded_frames"]
        assert t[kind]["conv_flops"] > 0 and t[kind]["valid_frames_per_s"] > 0
    assert t["reference"]["conv_flops_per_pass"] > 0
    assert t["profile_top_ops"] and t["profile_top_ops"][-1]["op"] == "(total)"
    f = r["features"]
    assert f["cache"]["frames"] > 0 and f["loader"]["frames"] > 0
    m = r["memory"]
    assert m["batches_run"] >= 1 and 100 < m["peak_rss_mb"] < 64 * 1024
    assert m["peak_rss_mb"] >= max(b["rss_mb"] for b in m["per_batch"]) - 1
    assert m["allocator_configured"] is True  # the children run with the entry point's malloc setting
    grow = r["memory_epochs"]
    assert grow["allocator_configured"] is True and [e["epoch"] for e in grow["per_epoch"]] == list(range(grow["epochs"]))
    assert all(e["peak_rss_mb"] >= e["rss_mb"] - 1 for e in grow["per_epoch"])
    tl = r["timeline"]
    # 60 s of speech-like noise with 4 silent seconds every 20 s: about 3 speech regions, each
    # cut into windows, the silences between them labelled pauses (inference/timeline.py)
    assert tl["audio_seconds"] == 60.0 and 2 <= tl["speech_regions"] <= 4
    assert tl["windows"] > tl["speech_regions"] and tl["pauses"] >= tl["speech_regions"] - 1
    assert tl["threads"] == 2 and 100 < tl["peak_rss_mb"] < 64 * 1024
    if not r["machine"]["cuda_available"]:
        assert r["gpu"]["measured"] is False and "not measured" in r["goals"]["gpu"]["measured"]
