"""ResultsWriter: the run's `results.json` (what the cross-validation and tables read)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from ..utils import atomic


class ResultsWriter(L.Callback):
    """Writes `<run dir>/results.json` after testing: fold, WA, UA, confusion matrix, classes."""

    def __init__(self, config_name: str = ""):
        self.config_name = config_name
        self.path: Path | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "test_results", None)
        if not results:
            return
        dm = trainer.datamodule
        split = getattr(dm, "split", None)
        record = {
            "config": self.config_name,
            "corpus": getattr(dm, "corpus_name", None),
            "fold": split.fold if split else None,
            "swap_speakers": bool(dm.hparams.get("swap_speakers", False)) if dm is not None else None,
            "val_speaker": split.val_speaker if split else None,
            "test_speaker": split.test_speaker if split else None,
            "merge_exc": bool(dm.hparams.get("merge_exc", False)) if dm is not None else None,
            "include_scripted": bool(dm.hparams.get("include_scripted", False)) if dm is not None else None,
            "emobox": dm.hparams.get("emobox") if dm is not None else None,  # val_speaker then says how validation was carved
            "ckpt_path": str(trainer.ckpt_path) if trainer.ckpt_path else None,
            **results,
        }
        self.path = Path(trainer.default_root_dir) / "results.json"
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
