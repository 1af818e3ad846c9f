"""The CPU profile's budget: a row's epoch is measured before it is trained, and a row that
would not finish in time is reported as needing a GPU instead of being trained or faked."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ser_fcn.study import budget, tables
from ser_fcn.study.budget import epoch_seconds, measure_epoch, row_hours, trainer_setting
from ser_fcn.utils.durations import format_duration
from ser_fcn.training.callbacks import EpochTimer

from test_crossval_tables import EXPERIMENTS

CPU = EXPERIMENTS / "profiles" / "cpu.yaml"
VGG = tables.TABLE1[2]  # VGGNet-16 Random-init


def test_epoch_timer_extrapolates_the_median_batch_after_the_first_to_a_full_epoch(tmp_path, monkeypatch):
    clock = iter([0.0, 9.0, 10.0, 12.0, 20.0, 23.0, 30.0, 31.0])  # batch times 9 (warm-up), 2, 3, 1
    monkeypatch.setattr("ser_fcn.training.callbacks.time.perf_counter", lambda: next(clock))
    timer = EpochTimer(str(tmp_path / "epoch.json"))
    trainer = SimpleNamespace(train_dataloader=list(range(40)), is_global_zero=True)
    timer.on_train_start(trainer, None)
    for i in range(4):
        timer.on_train_batch_start(trainer, None, None, i)
        timer.on_train_batch_end(trainer, None, None, None, i)
    timer.on_train_end(trainer, None)
    record = __import__("json").loads((tmp_path / "epoch.json").read_text())
    assert record == {"batches_per_epoch": 40, "timed_batches": 3, "seconds_per_batch": 2.0, "epoch_s": 80.0}


def test_the_epoch_cap_and_batch_limit_come_from_the_files_then_the_overrides():
    files = [str(EXPERIMENTS / "vgg16_random.yaml"), str(CPU)]
    import yaml

    assert trainer_setting(files, [], "max_epochs") == yaml.safe_load(CPU.read_text())["trainer"]["max_epochs"]
    assert trainer_setting(files, ["--trainer.max_epochs", "3"], "max_epochs") == 3
    assert trainer_setting(files[:1], [], "max_epochs") == 30  # base.yaml's
    measured = {"batches_per_epoch": 40, "seconds_per_batch": 2.0}
    assert epoch_seconds(measured) == 80.0
    assert epoch_seconds(measured, 6) == 12.0 and epoch_seconds(measured, 100) == 80.0
    assert epoch_seconds(measured, 0.5) == 40.0


def _setup(tmp_path, hours):
    return tables.Setup("cpu", CPU, EXPERIMENTS, tmp_path / "runs", max_row_hours=hours)


def _no_cv(*args, **kwargs):
    raise AssertionError("a row over the budget must not be trained")


def test_a_row_over_the_budget_is_not_trained_and_the_table_says_it_needs_a_gpu(tmp_path, monkeypatch):
    measured = {"batches_per_epoch": 100, "timed_batches": 4, "seconds_per_batch": 30.0, "epoch_s": 3000.0}
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tables, "measure_epoch", lambda configs, overrides: calls.append(configs) or measured)
    monkeypatch.setattr(tables, "run_crossval", _no_cv)
    o = tables.run_row(VGG, _setup(tmp_path, 1.0))
    cap = trainer_setting([str(EXPERIMENTS / "vgg16_random.yaml"), str(CPU)], [], "max_epochs")
    hours = row_hours(3000.0, cap, 5)
    assert o.agg is None and o.note.startswith(f"needs a GPU: about {format_duration(hours * 3600)} on this machine")
    assert f"x {cap} epochs (the cap) x 5 training runs" in o.note and "measured at 50m00s" in o.note
    assert [Path(c).name for c in calls[0]] == ["vgg16_random.yaml", "cpu.yaml"]
    md = tables.render_table(1, [o], "cpu", CPU)
    assert f"| {VGG.system} | 65.3 | needs a GPU: about {format_duration(hours * 3600)}" in md


def test_a_row_within_the_budget_is_trained_and_a_gpu_machine_is_not_probed(tmp_path, monkeypatch):
    measured = {"batches_per_epoch": 10, "timed_batches": 4, "seconds_per_batch": 1.0, "epoch_s": 10.0}
    trained = []
    monkeypatch.setattr(tables, "measure_epoch", lambda configs, overrides: measured)
    monkeypatch.setattr(tables, "run_crossval", lambda *a, **k: trained.append(a[1].name) or {"n_runs": 0})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tables.run_row(VGG, _setup(tmp_path, 1.0)).note is None and trained == ["vgg16_random"]

    monkeypatch.setattr(tables, "measure_epoch", _no_cv)  # neither with a GPU nor without a budget
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    tables.run_row(VGG, _setup(tmp_path, 1.0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tables.run_row(VGG, _setup(tmp_path, None))
    assert trained == ["vgg16_random"] * 3


def test_render_only_reads_back_the_rows_measured_epoch_for_the_same_setup(tmp_path, monkeypatch):
    """A row's measured epoch is kept in its folder; `--render-only` reads it back (a second
    render on a busy machine gives the same note), unless the row's setup changed; a training
    run measures afresh."""
    slow = {"batches_per_epoch": 100, "timed_batches": 4, "seconds_per_batch": 30.0, "epoch_s": 3000.0}
    slower = {**slow, "seconds_per_batch": 90.0, "epoch_s": 9000.0}
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tables, "run_crossval", _no_cv)
    monkeypatch.setattr(tables, "measure_epoch", lambda configs, overrides: calls.append(overrides) or slow)
    render = tables.Setup("cpu", CPU, EXPERIMENTS, tmp_path / "runs", max_row_hours=1.0, render_only=True)
    first = tables.run_row(VGG, render).note
    assert first.startswith("needs a GPU") and len(calls) == 1

    monkeypatch.setattr(tables, "measure_epoch", lambda configs, overrides: calls.append(overrides) or slower)
    assert tables.run_row(VGG, render).note == first and len(calls) == 1  # read back, not re-timed
    other = tables.Setup("cpu", CPU, EXPERIMENTS, tmp_path / "runs", max_row_hours=1.0, render_only=True,
                         overrides=["--trainer.max_epochs", "4"])
    assert tables.run_row(VGG, other).note != first and len(calls) == 2  # another setup: measured
    train = tables.Setup("cpu", CPU, EXPERIMENTS, tmp_path / "runs", max_row_hours=1.0)
    assert "measured at 2h30m:" in tables.run_row(VGG, train).note and len(calls) == 3  # training: afresh


def test_profile_auto_is_cpu_without_a_gpu_and_full_with_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tables.default_profile() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert tables.default_profile() == "full"
    assert (EXPERIMENTS / "profiles" / "full.yaml").is_file() and CPU.is_file()


@pytest.mark.slow
def test_the_probe_runs_a_real_fit_of_a_few_batches_and_measures_its_epoch(demo_corpus):
    configs = [str(EXPERIMENTS / "alexnet_random.yaml"), str(CPU)]
    measured = measure_epoch(configs, ["--data.root", str(demo_corpus.root)], batches=2)
    assert measured["timed_batches"] == 2 and measured["batches_per_epoch"] > 2
    assert measured["epoch_s"] == pytest.approx(measured["seconds_per_batch"] * measured["batches_per_epoch"])
    assert budget.PROBE_BATCHES >= 2


def test_the_gpu_note_states_a_short_epoch_in_seconds_and_multiplies_it_out():
    """A 24 s epoch (1.1 s x 22 batches) is '24s', not '0 min', and the row's time is its product in
    hours and minutes."""
    note = budget.needs_gpu_note({"seconds_per_batch": 1.1, "timed_batches": 4}, 24.2, 24, 10)
    assert "measured at 0m24s:" in note and "0 min" not in note
    assert f"about {format_duration(row_hours(24.2, 24, 10) * 3600)} on" in note and "about 1h36m" in note and "x 22 batches" in note  # 5808 s, not "about 2 h"
