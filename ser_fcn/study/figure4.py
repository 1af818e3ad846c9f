"""Figure 4 of the paper: log spectrograms (top) and their 2-D attention weights (bottom).

`python -m ser_fcn figure4 [--ckpt PATH] [--out results/figure4.png]` draws it for one
test utterance per emotion of a trained checkpoint (figures/panels.py draws the panels).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from ..figures.panels import Panel, draw_panels
from ..inference.checkpoint import DEMO_CKPT_GLOB, datamodule_from_hparams, load_checkpoint, newest_checkpoint
from ..models.attention import AttentionHead
from ..models.receptive_field import encoder_grid
from ..training.forward import attention_of, posteriors

log = logging.getLogger(__name__)

DEFAULT_OUT = "results/figure4.png"


def pick_examples(post: dict[int, tuple[np.ndarray, int]], n_classes: int) -> list[tuple[int, int, bool]]:
    """Per class: the correctly classified utterance with the highest posterior of its class,
    else (none correct) the one with the highest posterior of its class. [(utt, class, correct)]."""
    picks = []
    for c in range(n_classes):
        members = [(utt, p) for utt, (p, y) in post.items() if y == c]
        if not members:
            continue
        correct = [(utt, p) for utt, p in members if int(np.argmax(p)) == c]
        utt, _ = max(correct or members, key=lambda up: (up[1][c], -up[0]))
        picks.append((utt, c, bool(correct)))
    return picks


def make_figure4(ckpt: str | Path, out: str | Path = DEFAULT_OUT) -> Path:
    module, cfg, dm_hp = load_checkpoint(ckpt)
    if not isinstance(getattr(module.net, "head", None), AttentionHead):
        raise ValueError(f"{ckpt}: {type(module.net).__name__} has no attention, so figure 4 cannot be drawn")
    dm = datamodule_from_hparams(dm_hp)
    dm.prepare_data()
    dm.setup("test")
    ds = dm.datasets["test"]
    post = posteriors(module, dm.test_dataloader())
    names = module.class_names
    panels = []
    for u, c, correct in pick_examples(post, len(names)):
        row = dm.rows[ds.indices[u]]
        spec = torch.from_numpy(dm.features(row))  # as the model sees it (data.speaker_norm applied)
        probs, att = attention_of(module, spec)
        pred = int(np.argmax(probs))
        note = "" if correct else "  (no correct one)"
        panels.append(
            Panel(spec.numpy(), att, f"{row.utterance_id}\ntrue {names[c]}, predicted {names[pred]} (p={probs[pred]:.2f}){note}")
        )
        log.info("figure4: %s true %s predicted %s p=%.3f", row.utterance_id, names[c], names[pred], probs[pred])
    fig = draw_panels(panels, cfg, encoder_grid(module.net.encoder))
    fig.suptitle(f"Attention of the FCN on test utterances ({dm.corpus_name} corpus, fold {dm_hp.get('fold', '?')})\n"
                 f"{ckpt}", fontsize=9)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ser_fcn figure4",
        description="Figure 4 of the paper: per emotion, one test utterance's spectrogram and its 2-D attention",
    )
    parser.add_argument("--ckpt", default=None, help=f"checkpoint (default: the newest {DEMO_CKPT_GLOB})")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        ckpt = Path(args.ckpt) if args.ckpt else newest_checkpoint()
        out = make_figure4(ckpt, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(f"wrote {out} (checkpoint {ckpt})")


if __name__ == "__main__":  # pragma: no cover
    main()
