"""Tiny FCN + attention fits on the demo corpus, shared by the timeline, export and evaluate
tests (each built once per test session, on first use)."""

from pathlib import Path

from ser_fcn.cli import run_cli

from helpers import fit_args


def _fit_once(demo_corpus, tmp_path_factory, name: str, *extra: str) -> tuple[Path, Path]:
    """(best checkpoint, run folder) of a 1-epoch fit of fold 1 with `extra` words, run in the
    session's folder `name` the first time it is asked for (its test results in results.json)."""
    run_dir = tmp_path_factory.getbasetemp() / name
    found = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) if (run_dir / "results.json").is_file() else []
    if not found:
        run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--trainer.max_epochs", "1", *extra)])
        found = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    return found[0], run_dir


def tiny_checkpoint(demo_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """(best checkpoint, run folder) of a 1-epoch fit of fold 1, its test results in results.json."""
    return _fit_once(demo_corpus, tmp_path_factory, "deploy_fit", "--trainer.limit_train_batches", "3")


def deltas_recurrent_checkpoint(demo_corpus, tmp_path_factory) -> Path:
    """Best checkpoint of a 1-epoch fit with the real-speech recipe's deltas and models/recurrent.py's
    LSTM: both sit outside `net.encoder` and `net.head`, and their LSTMs need their own ONNX exporter."""
    return _fit_once(demo_corpus, tmp_path_factory, "deltas_recurrent_fit", "--model.net.init_args.deltas", "true",
                     "--model.net.init_args.recurrent", "true", "--trainer.limit_train_batches", "2",
                     "--trainer.logger", "false")[0]
