"""ser_fcn.utils (atomic writes, machine description) and the one home of the optimizer default."""

import json
import os

import pytest
import torch
import yaml

from ser_fcn.configs import BASE_CONFIG, base_optimizer
from ser_fcn.models import FCNAttention
from ser_fcn.training.module import SERModule
from ser_fcn.utils import atomic
from ser_fcn.utils.machine import cpu_model


def test_atomic_json_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic.write_json(path, {"wa": 0.5, "classes": ["neu", "hap"]})
    assert json.loads(path.read_text()) == {"wa": 0.5, "classes": ["neu", "hap"]}
    assert os.listdir(path.parent) == ["r.json"]


def test_an_unserialisable_object_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "r.json"
    atomic.write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"new": object()})
    assert json.loads(path.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_a_write_that_fails_before_the_rename_keeps_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "r.txt"
    atomic.write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.txt"]


def test_cpu_model_names_something():
    assert cpu_model().strip()


def test_a_module_built_outside_the_cli_uses_base_yamls_optimizer():
    spec = yaml.safe_load(BASE_CONFIG.read_text())["model"]["optimizer"]
    module = SERModule(net=FCNAttention(num_classes=4), num_classes=4)
    opt = module.configure_optimizers()
    assert type(opt).__name__ == spec["class_path"].rsplit(".", 1)[-1]
    for key, value in spec["init_args"].items():
        assert opt.defaults[key] == value
    assert base_optimizer()([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == spec["init_args"]["lr"]


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path):
    """The run folder is named by the second the run starts; it is created when chosen, so a
    second run choosing in the same second sees it and takes `-2` (two EmoDB fits started
    together once shared one folder and overwrote each other's last.ckpt)."""
    from ser_fcn.cli import _fresh_dir

    name = tmp_path / "runs" / "fcn_attn_random" / "fit-20261204-021642"
    first, second = _fresh_dir(name), _fresh_dir(name)
    assert first == name and second == name.with_name(name.name + "-2")
    assert first.is_dir() and second.is_dir()
