"""ResultsWriter: the run's `results.json` (what the cross-validation and tables read);
EpochTimer: a full training epoch's time, measured on a few batches;
EMA: validate, keep and test a moving average of the weights."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
import torch
from torch.optim.swa_utils import get_ema_avg_fn

from ..utils import atomic
from ..utils.run_folder import RESULTS


def exchange_validation_sets(entry: dict) -> dict:
    """A history entry of a shared training run as the swapped fold sees it: its `val_swap/*`
    figures become `val/*` and the other way round (`data.validate_both`)."""
    def other(key: str) -> str:
        head, sep, tail = key.partition("/")
        return {"val": "val_swap", "val_swap": "val"}.get(head, head) + sep + tail

    return {other(k): v for k, v in entry.items()}


class ResultsWriter(L.Callback):
    """Writes `<run dir>/results.json` after testing: fold, WA, UA, confusion matrix, classes.

    `run_dir`: where to write it instead of the trainer's folder (the swapped fold of a shared
    training run, `fit --swap_run_dir`); its history then reads the swapped fold's validation.
    """

    def __init__(self, config_name: str = ""):
        self.config_name = config_name
        self.path: Path | None = None
        self.run_dir: Path | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "test_results", None)
        if not results:
            return
        dm = trainer.datamodule
        split = getattr(dm, "split", None)
        if getattr(dm, "exchanged", False):
            results = {**results, "history": [exchange_validation_sets(e) for e in results.get("history", [])]}
        record = {
            "config": self.config_name,
            "corpus": getattr(dm, "corpus_name", None),
            "fold": split.fold if split else None,
            "swap_speakers": getattr(dm, "speakers_swapped", None),
            "val_speaker": split.val_speaker if split else None,
            "test_speaker": split.test_speaker if split else None,
            "merge_exc": bool(dm.hparams.get("merge_exc", False)) if dm is not None else None,
            "include_scripted": bool(dm.hparams.get("include_scripted", False)) if dm is not None else None,
            "emobox": dm.hparams.get("emobox") if dm is not None else None,  # val_speaker then says how validation was carved
            "ckpt_path": str(trainer.ckpt_path) if trainer.ckpt_path else None,
            **results,
        }
        self.path = Path(self.run_dir or trainer.default_root_dir) / RESULTS
        if trainer.is_global_zero:
            atomic.write_json(self.path, record)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                _log_confusion_matrix(logger, results)


def _log_confusion_matrix(logger: WandbLogger, results: dict) -> None:
    """The test confusion matrix as a W&B table (counts, true x predicted)."""
    import wandb

    names = results["classes"]
    rows = [[true, pred, count] for true, counts in zip(names, results["confusion_matrix"]) for pred, count in zip(names, counts)]
    logger.experiment.log({"test/confusion_matrix": wandb.Table(columns=["true", "predicted", "count"], data=rows)})


class EpochTimer(L.Callback):
    """Times the training batches of a short `fit` and writes what a whole epoch would take.

    `<path>` gets `{"batches_per_epoch", "timed_batches", "seconds_per_batch", "epoch_s"}`:
    the median wall time of the batches after the first (its warm-up is not typical) times
    the number of batches of a full training epoch (validation is not counted). Used by
    `study.budget` to say how long a row would take on this machine without training it.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.times: list[float] = []
        self.batches_per_epoch = 0
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches_per_epoch = len(trainer.train_dataloader)  # the full epoch, whatever limit_train_batches says

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        timed = self.times[1:] or self.times
        if not timed or not trainer.is_global_zero:
            return
        per_batch = statistics.median(timed)
        atomic.write_json(self.path, {"batches_per_epoch": self.batches_per_epoch, "timed_batches": len(timed),
                                      "seconds_per_batch": per_batch, "epoch_s": per_batch * self.batches_per_epoch})


def warm_ema_avg_fn(decay: float):
    """An ``AveragedModel`` avg_fn: the EMA at decay ``min(decay, (1 + n) / (10 + n))`` when ``n``
    models have been averaged (n = 1 at the first call: the first update copies)."""

    @torch.no_grad()
    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay)
        return d * averaged + (1 - d) * current

    return update


class EMA(WeightAveraging):
    """Validates, checkpoints and tests an exponential moving average of the weights (and of the
    buffers: PooledNorm's running statistics), updated after every optimiser step.

    One validation speaker's UA jumps by several points from epoch to epoch, so the best epoch is
    partly a lucky one; the average moves slowly and smooths those jumps out. ``decay`` 0.98 is a
    horizon of about 1 / (1 - 0.98) = 50 steps: an EmoDB epoch at 8000 frames a batch is 40 steps.
    Lightning's WeightAveraging puts the averaged weights in each checkpoint's ``state_dict`` (the
    live ones in ``current_model_state``, for resuming), so `test`, `predict` and `export` read the
    average without knowing of it.

    ``warmup``: the decay at the n-th update is ``min(decay, (1 + n) / (10 + n))`` (TensorFlow's
    ExponentialMovingAverage with ``num_updates``), so the early average follows the live weights
    and a long horizon does not hold on to the random initial ones: without it, decay 0.995 still
    held 30 % of them after 6 EmoDB epochs and validation sat at chance (results/emodb_ablation.md,
    seventh probe). Off by default, so runs made before it existed are reproduced.
    """

    def __init__(self, decay: float = 0.98, warmup: bool = False):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        super().__init__(avg_fn=warm_ema_avg_fn(decay) if warmup else get_ema_avg_fn(decay))

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Only a resumed `fit` takes the live weights back out of the checkpoint.

        Lightning's WeightAveraging does so whenever its average exists, and it still exists when
        the same trainer tests the best checkpoint after `fit`: the test would then read the live
        weights of the best epoch instead of the average that was validated and kept.
        """
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
