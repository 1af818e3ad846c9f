"""AttentionImageLogger: Figure 4's panel of a few validation utterances, on W&B every epoch."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from ..figures.panels import Panel, draw_panels, figure_to_rgb
from .forward import attention_of
from ..models.receptive_field import encoder_grid


class AttentionImageLogger(L.Callback):
    """Logs the attention panel (spectrogram over its 2-D attention, as in Figure 4 of the
    paper) of a fixed handful of validation utterances to W&B after every `every_n_epochs`-th
    validation. The utterances, one per class (the one of median length), are chosen once.
    Does nothing without a WandbLogger or for a model without attention.
    """

    def __init__(self, every_n_epochs: int = 1, key: str = "val/attention"):
        self.every_n_epochs = max(1, every_n_epochs)
        self.key = key
        self.picks: list[int] | None = None  # items of the validation dataset

    @staticmethod
    def choose(dataset) -> list[int]:
        by_class: dict[int, list[tuple[int, int]]] = {}
        for i, (_, row, start, stop) in enumerate(dataset.items):
            label = dataset.class_index[dataset.rows[row].label]
            by_class.setdefault(label, []).append((stop - start, i))
        picks = []
        for label in sorted(by_class):
            items = sorted(by_class[label])
            picks.append(items[len(items) // 2][1])
        return picks

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.current_epoch % self.every_n_epochs:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        dataset = getattr(getattr(trainer, "datamodule", None), "datasets", {}).get("val")
        if not loggers or dataset is None or not hasattr(pl_module, "net"):
            return
        if self.picks is None:
            self.picks = self.choose(dataset)
        names = list(getattr(pl_module, "class_names", []))
        panels = []
        for i in self.picks:
            item = dataset[i]
            probs, att = attention_of(pl_module, item["features"])
            if att is None:
                return  # a baseline: nothing to draw
            pred = int(probs.argmax())
            panels.append(
                Panel(item["features"].numpy(), att,
                      f"{item['utterance_id']}\ntrue {names[item['label']]}, predicted {names[pred]} (p={probs[pred]:.2f})")
            )
        cfg = trainer.datamodule.spec
        fig = draw_panels(panels, cfg, encoder_grid(pl_module.net.encoder))
        fig.suptitle(f"epoch {trainer.current_epoch}", fontsize=9)
        image = figure_to_rgb(fig)
        for logger in loggers:
            logger.log_image(key=self.key, images=[image], caption=[f"epoch {trainer.current_epoch}"], step=trainer.global_step)
