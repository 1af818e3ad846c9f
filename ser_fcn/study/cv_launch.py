"""One run of a cross-validation as a `fit` subprocess: its command line, the process (its
output appended to the run's log), and what it ran on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..utils.machine import cpu_model
from .cv_plan import Run

# `fit` arguments that the runner owns (fold, seed, run folders, resume, testing): no override may set them
RESERVED = ("--data.fold", "--data.swap_speakers", "--run_dir", "--test_after_fit", "--seed_everything",
            "--data.seed", "--ckpt_path", "--swap_run_dir", "--data.validate_both")


def fit_command(configs: Sequence[str], run: Run, run_dir: Path, overrides: Sequence[str],
                resume_from: Path | None = None, swap_dir: Path | None = None) -> list[str]:
    """The `fit` command of one run; `resume_from`: the last.ckpt it goes on from; `swap_dir`: the
    folder of its swap partner, which the same training run serves (`fit --swap_run_dir`)."""
    cmd = [sys.executable, "-m", "ser_fcn", "fit"]
    for c in configs:
        cmd += ["--config", str(c)]
    cmd += [*overrides, "--data.fold", str(run.fold.fold), "--data.swap_speakers", str(run.fold.swap).lower(),
            "--seed_everything", str(run.seed), "--data.seed", str(run.seed), "--run_dir", str(run_dir)]
    cmd += ["--swap_run_dir", str(swap_dir)] if swap_dir else []
    return cmd + (["--ckpt_path", str(resume_from)] if resume_from else [])


def launch_fold(cmd: list[str], log_path: Path, echo: bool = False) -> int:
    """Run one fold's `fit`, its output appended to `log_path` (and echoed if asked); its exit code.

    Ctrl-C / SIGTERM of the runner stops the fold too; the fold folder is then left
    without results.json and the next run retrains it.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}  {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if echo:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
            return proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


@contextmanager
def sigterm_stops_the_fold() -> Iterator[None]:
    """`kill <runner pid>` raises SystemExit in the runner, which then stops the running fold
    (`launch_fold`) instead of leaving it orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_device(log_text: str = "") -> str:
    """The device a fold ran on, from Lightning's "GPU available: …, used: True" log line."""
    if re.search(r"GPU available: True \(cuda\), used: True", log_text):
        try:
            import torch

            return f"GPU: {torch.cuda.get_device_name(0)}"
        except Exception:  # noqa: BLE001 - the name is only a label
            return "GPU (cuda)"
    if re.search(r"GPU available: True \(mps\), used: True", log_text):
        return "GPU: Apple MPS"
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"
