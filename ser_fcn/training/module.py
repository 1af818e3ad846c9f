"""SERModule: training logic around any `net(x, lengths) -> (logits, attention)`.

The network is built elsewhere and passed in (lightning-hydra-template style); this
module owns input normalisation, the loss, the metrics and the optimiser.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..configs import base_optimizer
from ..data.collate import lengths_to_mask
from ..data.features import SpectrogramConfig
from ..utils.errors import ConfigError
from .augment import Augmentation
from .metrics import UtterancePosteriors, confusion_scores
from .mixup import Mixup


# val_swap: the second validation set of `data.validate_both` (the fold's test speaker), which
# picks the swapped fold's checkpoint when fold k and fold k-swap share one training run
VAL_SPLITS = ("val", "val_swap")
EVAL_SPLITS = (*VAL_SPLITS, "test")


class SERModule(L.LightningModule):
    """Args:
        net: the network (e.g. `ser_fcn.models.FCNAttention`).
        num_classes: number of emotion classes (linked from `data.num_classes`).
        n_bins: spectrogram bins (linked from `data.n_bins`); sizes the normalisation buffers.
        class_names: names of the classes, in output order (linked from `data.classes`).
        optimizer, scheduler: factories, configured in YAML (none given: base.yaml's optimizer).
        class_weighted_loss: weight the loss by inverse training class frequency
            (IEMOCAP is imbalanced; this trades WA for UA).
        check_finite: stop with the offending utterance ids when a batch or loss is NaN/Inf.
        augment: augmentation of training batches (training/augment.py: SpecAugment, SpeedPerturb),
            one or a list applied in order; None: none (the paper's).
        mixup: mixup of training batches and their labels (training/mixup.py), after `augment`;
            None: none (the paper's).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int = 4,
        n_bins: int = SpectrogramConfig.n_bins,
        class_names: list[str] | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        class_weighted_loss: bool = False,
        check_finite: bool = True,
        augment: Augmentation | list[Augmentation] | None = None,
        mixup: Mixup | None = None,
    ):
        super().__init__()
        if n_bins < getattr(net, "min_bins", 0):
            raise ConfigError(f"data.n_bins {n_bins}: {type(net).__name__} needs at least {net.min_bins} spectrogram rows")
        self.save_hyperparameters(ignore=["net", "augment", "mixup"])  # inference never augments
        self.net = net
        self.augment = nn.ModuleList(augment if isinstance(augment, (list, tuple)) else [augment] if augment else [])
        self.mixup = mixup
        # under LightningCLI hparams hold the config of these, not the callables
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        # per-bin input statistics of the training split, saved with the checkpoint
        self.register_buffer("feature_mean", torch.zeros(n_bins))
        self.register_buffer("feature_std", torch.ones(n_bins))
        self.register_buffer("class_weights", torch.ones(num_classes))

        self.train_wa = MulticlassAccuracy(num_classes, average="micro")
        self.train_loss = MeanMetric()
        self.pad_frames = MeanMetric()
        self.eval_posteriors = nn.ModuleDict({s: UtterancePosteriors() for s in EVAL_SPLITS})
        self.confmat = nn.ModuleDict({s: MulticlassConfusionMatrix(num_classes) for s in EVAL_SPLITS})
        self.val_ua_best = MaxMetric()
        self.test_results: dict | None = None
        self.history: list[dict] = []  # one entry per finished epoch; kept in checkpoints

    # --- set-up ---------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and dm is not None and getattr(dm, "feature_mean", None) is not None:
            self.feature_mean.copy_(dm.feature_mean)
            self.feature_std.copy_(dm.feature_std)
            counts = torch.tensor(dm.class_counts, dtype=torch.float)
            if self.hparams.class_weighted_loss:
                self.class_weights.copy_(counts.sum() / (len(counts) * counts.clamp_min(1)))
        if dm is not None and getattr(dm, "spec", None) is not None:
            for aug in self.augment:  # SpeedPerturb warps frequency: it needs the rows' Hz
                aug.set_bins(dm.spec.bin_frequencies())
        if dm is not None and getattr(dm, "classes", None):
            self.class_names = list(dm.classes)

    def configure_optimizers(self):
        make = self.optimizer_factory or base_optimizer()
        opt = make(self.parameters())
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "epoch"}}

    # --- forward ----------------------------------------------------------------------

    def normalize(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Standardise each bin with the training statistics; padding stays exactly 0."""
        mask = lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, None, :]
        return (x - self.feature_mean[:, None]) / self.feature_std[:, None] * mask

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        return self.net(self.normalize(x, lengths), lengths)

    def _check_finite(self, batch: dict, what: str, values: torch.Tensor) -> None:
        if not self.hparams.check_finite:
            return
        bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1) if values.dim() else ~torch.isfinite(values)
        if bad.any():
            ids = [batch["ids"][i] for i in bad.nonzero().flatten().tolist()] if values.dim() else batch["ids"]
            raise FloatingPointError(
                f"non-finite {what} at global step {self.global_step}; utterance(s): {', '.join(ids[:20])}. "
                "Training stopped so the model is not filled with NaN."
            )

    # --- steps ------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self._check_finite(batch, "input features", batch["x"])
        x, lengths = self.normalize(batch["x"], batch["lengths"]), batch["lengths"]
        for aug in self.augment:
            x, lengths = aug(x, lengths)
        y = batch["y"]
        if self.mixup is None:
            logits, _ = self.net(x, lengths)
            loss = F.cross_entropy(logits.float(), y, weight=self.class_weights)
        else:
            x, lengths, lam, partner = self.mixup(x, lengths)
            logits, _ = self.net(x, lengths)
            loss = (lam * F.cross_entropy(logits.float(), y, weight=self.class_weights)
                    + (1 - lam) * F.cross_entropy(logits.float(), y[partner], weight=self.class_weights))
            y = y if lam >= 0.5 else y[partner]  # train/wa counts the larger share's label
        self._check_finite(batch, "loss", loss)
        self.train_loss(loss)
        self.train_wa(logits, y)
        n = batch["lengths"]
        self.pad_frames.update(1 - n.sum() / (n.numel() * batch["x"].shape[-1]), weight=n.numel() * batch["x"].shape[-1])
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(n))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute(), sync_dist=True)
        self.log("train/wa", self.train_wa.compute(), sync_dist=True)
        self.log("train/pad_fraction", self.pad_frames.compute(), sync_dist=True)
        for m in (self.train_loss, self.train_wa, self.pad_frames):
            m.reset()

    def _eval_step(self, split: str, batch: dict) -> torch.Tensor:
        logits, _ = self(batch["x"], batch["lengths"])
        loss = F.cross_entropy(logits.float(), batch["y"])
        self.eval_posteriors[split].update(batch["utt_index"], logits.float().softmax(-1), batch["y"])
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(batch["y"]),
                 add_dataloader_idx=False)  # each validation set has its own name (VAL_SPLITS)
        return loss

    def _eval_epoch_end(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log WA / UA of the split's utterance posteriors; (utterance positions, posteriors,
        labels, confusion matrix)."""
        utt, probs, target = self.eval_posteriors[split].compute()
        self.eval_posteriors[split].reset()
        confmat = self.confmat[split](probs.argmax(-1), target).cpu()
        self.confmat[split].reset()
        wa, ua = confusion_scores(confmat)
        shown = split != "val_swap"  # the progress bar shows the fold's own validation speaker
        self.log(f"{split}/wa", wa, prog_bar=shown)
        self.log(f"{split}/ua", ua, prog_bar=shown)
        return utt, probs, target, confmat

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self._eval_step(VAL_SPLITS[dataloader_idx], batch)

    def on_validation_epoch_end(self) -> None:
        loaders = self.trainer.val_dataloaders
        splits = VAL_SPLITS[: len(loaders) if isinstance(loaders, (list, tuple)) else 1]
        for split in splits:
            self._eval_epoch_end(split)
        if not self.trainer.sanity_checking:
            self.val_ua_best(self.trainer.callback_metrics["val/ua"])
            self.log("val/ua_best", self.val_ua_best.compute())
            metrics = self.trainer.callback_metrics
            keys = [f"{s}/{m}" for s in splits for m in ("wa", "ua", "loss")]
            entry = {"epoch": self.current_epoch, **{k: float(metrics[k]) for k in keys if k in metrics}}
            if self.trainer.state.fn == TrainerFn.FITTING and self.train_loss.update_count:
                # how well this epoch fit its training batches (augmented, in training mode),
                # so that underfitting shows in results.json beside the validation figures
                entry.update({"train/loss": float(self.train_loss.compute()), "train/wa": float(self.train_wa.compute())})
            self.history.append(entry)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ser_fcn_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Resuming (empty history) takes the saved one; testing the best checkpoint right
        # after `fit` keeps the full history of the run rather than the best epoch's prefix.
        saved = list(checkpoint.get("ser_fcn_history", []))
        if len(saved) >= len(self.history):
            self.history = saved

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        utt, probs, target, confmat = self._eval_epoch_end("test")
        support = confmat.sum(1)
        recalls = {c: float(confmat[i, i] / support[i]) for i, c in enumerate(self.class_names) if support[i]}
        self.test_results = {
            "wa": float(self.trainer.callback_metrics["test/wa"]),
            "ua": float(self.trainer.callback_metrics["test/ua"]),
            "n_utterances": int(len(utt)),
            "classes": self.class_names,
            "confusion_matrix": confmat.tolist(),
            "recall_per_class": recalls,  # classes present in the test labels (those UA averages)
            "history": self.history,
            "posteriors": self._test_posteriors(utt, probs, target),
        }

    def _test_posteriors(self, utt: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> dict:
        """Every test utterance's posteriors (rows in `classes` order) with its id and label
        index: what an ensemble of runs averages (`cv --ensemble`) and a user's own analysis reads."""
        loader = self.trainer.test_dataloaders
        dataset = (loader[0] if isinstance(loader, (list, tuple)) else loader).dataset
        ids = dataset.utterance_ids  # by position in the split, as `utt` counts
        return {
            "utterance_ids": [ids[i] for i in utt.tolist()],
            "labels": target.tolist(),
            "probs": [[round(p, 6) for p in row] for row in probs.tolist()],
        }
