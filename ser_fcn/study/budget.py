"""Can this machine train a table row within the budget? Measure, then decide.

On a machine without a GPU, `make table1` must not spend many hours on a row (VGG16 on 3 s
segments is ~16x AlexNet's compute), nor fake it or cut it short. Before a row is trained,
`measure_epoch` runs its first fold's `fit` for a few batches with `EpochTimer` and
extrapolates one training epoch; `row_hours` multiplies by the epoch cap and the number of
runs (an upper bound: early stopping may end a run sooner). A row over the budget is reported
as "needs a GPU: about 2h05m on this machine" with that measurement, and not trained.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..utils.durations import format_duration
from .cv_plan import config_setting

PROBE_BATCHES = 4  # timed: the batches after the first (warm-up)
BUDGET = "budget.json"  # a row's measured epoch and the setup it was measured for, in the row's folder
TIMER = "ser_fcn.training.callbacks.EpochTimer"


def probe_command(configs: Sequence[str], overrides: Sequence[str], out: Path, batches: int = PROBE_BATCHES) -> list[str]:
    """`fit` of fold 1 for `batches` training batches: no validation, test, logger or checkpoint."""
    cmd = [sys.executable, "-m", "ser_fcn", "fit"]
    for c in configs:
        cmd += ["--config", str(c)]
    return cmd + [*overrides, "--data.fold", "1", "--trainer.max_epochs", "1",
                  "--trainer.limit_train_batches", str(batches + 1), "--trainer.limit_val_batches", "0",
                  "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]",
                  "--trainer.callbacks+", TIMER, "--trainer.callbacks.init_args.path", str(out / "epoch.json"),
                  "--test_after_fit", "false", "--run_dir", str(out / "run")]


def measure_epoch(configs: Sequence[str], overrides: Sequence[str], batches: int = PROBE_BATCHES) -> dict:
    """One training epoch of this row on this machine (`EpochTimer`'s record), measured on
    `batches` batches of fold 1. Raises RuntimeError (with the output's tail) if the probe fails."""
    with tempfile.TemporaryDirectory(prefix="ser_fcn-probe-") as tmp:
        out = Path(tmp)
        proc = subprocess.run(probe_command(configs, overrides, out, batches), capture_output=True, text=True)
        record = out / "epoch.json"
        if proc.returncode != 0 or not record.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise RuntimeError(f"timing probe failed (exit {proc.returncode}):\n{tail}")
        return json.loads(record.read_text())


def trainer_setting(configs: Sequence[str], overrides: Sequence[str], key: str):
    """`trainer.<key>` as base.yaml, then the config files, then the overrides set it (None: unset)."""
    return config_setting(configs, overrides, f"trainer.{key}")


def epoch_seconds(measured: dict, limit_train_batches=None) -> float:
    """A training epoch as the row runs it: the measured full epoch, or fewer batches when the
    profile sets `limit_train_batches` (a count, or a fraction of the epoch)."""
    n = measured["batches_per_epoch"]
    if isinstance(limit_train_batches, int) and not isinstance(limit_train_batches, bool):
        n = min(n, limit_train_batches)
    elif isinstance(limit_train_batches, float):
        n = n * limit_train_batches
    return measured["seconds_per_batch"] * n


def row_hours(epoch_s: float, max_epochs: int, trainings: int) -> float:
    """Hours to train `trainings` training runs of at most `max_epochs` epochs of `epoch_s`
    seconds (the cap: early stopping may end sooner)."""
    return epoch_s * max_epochs * trainings / 3600


def needs_gpu_note(measured: dict, epoch_s: float, max_epochs: int, runs: int, trainings: int | None = None) -> str:
    """The table cell of a row this machine cannot train within the budget: `runs` (fold, seed)
    runs in `trainings` training runs (fewer when a fold and its swap share one; default `runs`)."""
    trainings = runs if trainings is None else trainings
    hours = row_hours(epoch_s, max_epochs, trainings)
    shared = f" for {runs} runs (a fold and its swap share one)" if trainings < runs else ""
    # hours and minutes: a whole-hour figure would print 1 h 28 min as "1 h", within a 1-hour budget
    return (f"needs a GPU: about {format_duration(hours * 3600)} on this machine (a training epoch measured at {format_duration(epoch_s)}: "
            f"{measured['seconds_per_batch']:.1f} s per batch, median of {measured['timed_batches']} batches of fold 1, "
            f"x {round(epoch_s / measured['seconds_per_batch'])} batches; x {max_epochs} epochs (the cap) "
            f"x {trainings} training runs{shared})")
