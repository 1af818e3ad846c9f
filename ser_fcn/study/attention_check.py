"""Does the 2-D attention find the planted emotion? (issue 11, the paper's premise by construction)

On a planted demo corpus (`python -m ser_fcn demo-data --planted`) every utterance is neutral
speech except one region, listed in `planted_regions.csv`. For each test utterance this module
measures the **localisation ratio**: the share of the attention mass that falls inside the region
divided by the region's share of the utterance, both counted on the encoder's output grid, so
that uniform attention (mean pooling) gives exactly 1.0 and attention confined to the region
gives 1 / (region share).

Frames to cells: spectrogram frame k is centred at (k * hop + win / 2) / sr seconds and belongs
to the output cell whose receptive-field centre is nearest (`figures.cell_index` on the
`encoder_grid`). A time cell counts as "in the region" by the fraction of its frames that lie in
the region; attention is summed over frequency first.

`python -m ser_fcn attention-check --ckpt C --corpus DIR [--out results/attention_check.json]`
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from ..corpora.demo_corpus import PLANTED_BACKGROUND, REGIONS_NAME, ROOT_NAME, read_regions
from ..data.features import SpectrogramConfig
from ..models.attention import AttentionHead
from ..inference.checkpoint import datamodule_from_hparams, load_checkpoint
from ..utils import atomic
from ..models.receptive_field import CellGrid, cell_index, encoder_grid
from ..training.forward import attention_of

log = logging.getLogger(__name__)

DEFAULT_OUT = "results/attention_check.json"


def region_frames(start_s: float, end_s: float, n_frames: int, cfg: SpectrogramConfig) -> np.ndarray:
    """(n_frames,) bool: the frames whose centre lies in [start_s, end_s)."""
    centres = (np.arange(n_frames) * cfg.hop_length + cfg.win_length / 2) / cfg.sample_rate
    return (centres >= start_s) & (centres < end_s)


def cell_fractions(in_region: np.ndarray, n_cells: int, grid: CellGrid) -> np.ndarray:
    """(n_cells,) share of each time cell's frames (nearest receptive-field centre) in the region."""
    cells = cell_index(len(in_region), n_cells, grid.jump_t, grid.centre_t)
    frames = np.bincount(cells, minlength=n_cells)
    inside = np.bincount(cells, weights=in_region.astype(float), minlength=n_cells)
    return np.divide(inside, frames, out=np.zeros(n_cells), where=frames > 0)


def localisation_ratio(alpha: np.ndarray, fractions: np.ndarray) -> float:
    """Attention mass in the region / the region's share of the cells; 1.0 = uniform.

    `alpha`: (F', T') attention of one utterance's valid cells (sums to 1); `fractions`: (T',)
    from `cell_fractions`.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim != 2 or alpha.shape[1] != len(fractions):
        raise ValueError(f"attention of shape {alpha.shape} does not match {len(fractions)} time cells")
    share = float(np.mean(fractions))
    if share <= 0:
        raise ValueError("the region covers no cell of the utterance")
    over_time = alpha.sum(axis=0) / alpha.sum()
    return float(np.dot(over_time, fractions) / share)


def summarise(values: list[float]) -> dict:
    """Median, mean and count of a list of ratios (None when empty)."""
    if not values:
        return {"n": 0, "median": None, "mean": None}
    return {"n": len(values), "median": float(np.median(values)), "mean": float(np.mean(values))}


def summaries(records: list[dict], class_names: list[str]) -> dict:
    """The ratio's summaries: correctly classified utterances, those of them with an emotional
    region (a PLANTED_BACKGROUND utterance has none: its region sounds like the rest, so its
    ratio says nothing about localisation), each class's correct ones, and all utterances."""
    correct = [r for r in records if r["correct"]]
    return {"correct": summarise([r["ratio"] for r in correct]),
            "correct_emotional": summarise([r["ratio"] for r in correct if r["label"] != PLANTED_BACKGROUND]),
            "correct_per_class": {c: summarise([r["ratio"] for r in correct if r["label"] == c]) for c in class_names},
            "all": summarise([r["ratio"] for r in records])}


def _utterance_record(module, dm, position: int, region: tuple[float, float], grid: CellGrid, cfg) -> dict:
    ds = dm.datasets["test"]
    row = dm.rows[ds.indices[position]]
    spec = torch.from_numpy(dm.features(row))
    probs, alpha = attention_of(module, spec)
    predicted = module.class_names[int(np.argmax(probs))]
    fractions = cell_fractions(region_frames(*region, spec.shape[-1], cfg), alpha.shape[1], grid)
    return {"utterance_id": row.utterance_id, "label": row.label, "predicted": predicted,
            "correct": predicted == row.label, "region_s": list(region), "region_share": float(np.mean(fractions)),
            "ratio": localisation_ratio(alpha, fractions)}


def check_attention(ckpt: str | Path, corpus: str | Path) -> dict:
    """Localisation ratio of every test utterance of the checkpoint's fold, read on `corpus`."""
    root = corpus_root(corpus)
    regions = read_regions(root)
    module, cfg, dm_hp = load_checkpoint(ckpt)
    if not isinstance(getattr(module.net, "head", None), AttentionHead):
        raise ValueError(f"{ckpt}: {type(module.net).__name__} has no attention head to check")
    dm = datamodule_from_hparams({**dm_hp, "root": str(root), "manifest": None, "segmented": False})
    dm.prepare_data()
    dm.setup("test")
    grid = encoder_grid(module.net.encoder)
    records = []
    for position, uid in enumerate(dm.datasets["test"].utterance_ids):
        if uid not in regions:
            raise ValueError(f"{root / REGIONS_NAME}: no region for test utterance {uid}")
        records.append(_utterance_record(module, dm, position, regions[uid], grid, cfg))
    return {"ckpt": str(ckpt), "corpus": str(root), "fold": dm.split.fold, "test_speaker": dm.split.test_speaker,
            "lam": float(module.net.head.lam), **summaries(records, list(module.class_names)), "utterances": records}


def corpus_root(corpus: str | Path) -> Path:
    """The IEMOCAP_full_release folder of a planted corpus: `corpus` itself or the one inside it."""
    corpus = Path(corpus)
    root = corpus if (corpus / REGIONS_NAME).is_file() or corpus.name == ROOT_NAME else corpus / ROOT_NAME
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus}: no {ROOT_NAME} folder (write one with `python -m ser_fcn demo-data --planted`)")
    return root


def describe(result: dict) -> str:
    def fmt(s: dict) -> str:
        return "none" if not s["n"] else f"median {s['median']:.2f}x, mean {s['mean']:.2f}x (n={s['n']})"

    per_class = "; ".join(f"{c} {fmt(s)}" for c, s in result["correct_per_class"].items())
    return (f"localisation ratio (1.0 = uniform), correctly classified test utterances with an emotional region "
            f"(label not {PLANTED_BACKGROUND}): {fmt(result['correct_emotional'])}; all correctly classified: "
            f"{fmt(result['correct'])}; per class (correct ones): {per_class}; all test utterances: {fmt(result['all'])}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ser_fcn attention-check",
                                description="share of attention inside the planted emotional region, per test utterance")
    p.add_argument("--ckpt", required=True, help="an FCN + attention checkpoint trained on the planted corpus")
    p.add_argument("--corpus", required=True, help="the planted corpus (demo-data --planted --out DIR)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON with every utterance's ratio (default {DEFAULT_OUT})")
    a = p.parse_args(argv)
    try:
        result = check_attention(a.ckpt, a.corpus)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    atomic.write_json(a.out, result)
    print(describe(result))
    print(f"wrote {a.out}")


if __name__ == "__main__":  # pragma: no cover
    main()
