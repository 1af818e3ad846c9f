"""One tiny FCN + attention fit on the demo corpus, shared by the timeline, export and
evaluate tests (built once per test session, on first use)."""

from pathlib import Path

from ser_fcn.cli import run_cli

from helpers import fit_args


def tiny_checkpoint(demo_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """(best checkpoint, run folder) of a 1-epoch fit of fold 1, its test results in results.json."""
    run_dir = tmp_path_factory.getbasetemp() / "deploy_fit"
    found = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) if (run_dir / "results.json").is_file() else []
    if found:
        return found[0], run_dir
    run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3")])
    return next((run_dir / "checkpoints").glob("best-*.ckpt")), run_dir
