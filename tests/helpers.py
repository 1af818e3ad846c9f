"""Shared test helpers (importable: pytest puts tests/ on sys.path)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fit_args(root, run_dir, *extra, config="fcn_attn_random.yaml"):
    """CLI words for a small, quiet run of `config` on the corpus at `root`, in `run_dir`."""
    return [
        "--config", str(REPO / "experiments" / config),
        "--data.root", str(root),
        "--data.max_frames_per_batch", "2500",
        "--data.progress", "false",
        "--trainer.enable_progress_bar", "false",
        "--run_dir", str(run_dir),
        *extra,
    ]
