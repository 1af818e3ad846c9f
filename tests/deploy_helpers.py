"""Tiny FCN + attention fits on the demo corpus, shared by the timeline, export and evaluate
tests (each built once per test session, on first use)."""

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


def deltas_recurrent_checkpoint(demo_corpus, tmp_path_factory) -> Path:
    """Best checkpoint of a 1-epoch fit with the real-speech recipe's deltas and models/recurrent.py's
    LSTM: both sit outside `net.encoder` and `net.head`, and their LSTMs need their own ONNX exporter."""
    run_dir = tmp_path_factory.getbasetemp() / "deltas_recurrent_fit"
    found = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) if (run_dir / "results.json").is_file() else []
    if found:
        return found[0]
    run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--model.net.init_args.deltas", "true",
                              "--model.net.init_args.recurrent", "true", "--trainer.max_epochs", "1",
                              "--trainer.limit_train_batches", "2", "--trainer.logger", "false")])
    return next((run_dir / "checkpoints").glob("best-*.ckpt"))
