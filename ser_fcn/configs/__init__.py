"""The package's default config: every `python -m ser_fcn fit|validate|test` starts from it."""

import functools
import importlib
from pathlib import Path

import yaml

BASE_CONFIG = Path(__file__).parent / "base.yaml"


def base_optimizer():
    """The optimizer factory that base.yaml configures (`model.optimizer`), for a SERModule
    built outside the CLI (benchmarks, tests, notebooks): `base_optimizer()(params)`."""
    spec = yaml.safe_load(BASE_CONFIG.read_text())["model"]["optimizer"]
    module, _, name = spec["class_path"].rpartition(".")
    return functools.partial(getattr(importlib.import_module(module), name), **(spec.get("init_args") or {}))
