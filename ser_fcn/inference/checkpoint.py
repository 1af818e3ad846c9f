"""Loading what `python -m ser_fcn fit` wrote: the trained module, its spectrogram settings
and its data module, from a checkpoint alone (predict, figure4, evaluation)."""

from __future__ import annotations

import glob
import inspect
from pathlib import Path

import torch

from ..data.datamodule import SERDataModule
from ..data.features import SpectrogramConfig
from ..training.module import SERModule

DEMO_CKPT_GLOB = "runs/demo/*/checkpoints/best-*.ckpt"  # where `make demo` leaves its best checkpoint


def newest_checkpoint(pattern: str = DEMO_CKPT_GLOB) -> Path:
    found = [Path(p) for p in glob.glob(pattern)]
    if not found:
        raise FileNotFoundError(f"no checkpoint matches {pattern}: run `make demo` first (or pass --ckpt PATH)")
    return max(found, key=lambda p: p.stat().st_mtime)


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """(SERModule in eval mode, SpectrogramConfig of the run, datamodule hparams dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    raw = torch.load(path, map_location="cpu", weights_only=False)
    if "net" not in (raw.get("hyper_parameters") or {}):
        raise ValueError(
            f"{path}: the checkpoint does not record its network's config; "
            "checkpoints written by `python -m ser_fcn fit` do"
        )
    module = SERModule.load_from_checkpoint(path, map_location=device)
    module.eval()
    dm_hp = dict(raw.get("datamodule_hyper_parameters") or {})
    return module, SpectrogramConfig.from_hparams(dm_hp), dm_hp


def datamodule_from_hparams(dm_hp: dict):
    """The run's SERDataModule, rebuilt from the checkpoint's `datamodule_hyperparameters`."""
    accepted = set(inspect.signature(SERDataModule.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in dm_hp.items() if k in accepted}
    kwargs["progress"] = False
    kwargs["num_workers"] = 0
    return SERDataModule(**kwargs)
