"""One tiny FCN + attention fit on the demo corpus, shared by the timeline, export and
evaluate tests (built once per test session, on first use)."""

from pathlib import Path

import pytest

from ser_fcn.cli import run_cli

from helpers import REPO, fit_args


def tiny_checkpoint(demo_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """(best checkpoint, run folder) of a 1-epoch fit of fold 1, its test results in results.json."""
    run_dir = tmp_path_factory.getbasetemp() / "deploy_fit"
    found = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) if (run_dir / "results.json").is_file() else []
    if found:
        return found[0], run_dir
    config = "fcn_attn_random.yaml" if (REPO / "experiments" / "fcn_attn_random.yaml").is_file() else "fcn_attn.yaml"
    with pytest.MonkeyPatch.context() as mp:  # module-scoped callers run before conftest's autouse fixture
        mp.setenv("SER_FCN_CACHE", str(tmp_path_factory.getbasetemp() / "ser_fcn_cache"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--model.net.init_args.weights", "null",
                                  "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
                                  config=config)])
    return next((run_dir / "checkpoints").glob("best-*.ckpt")), run_dir
