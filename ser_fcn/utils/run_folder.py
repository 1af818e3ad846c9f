"""The files of a run folder (`fit --run_dir`; a cross-validation's `<out>/<run>`): one name each,
for what writes them (the CLI, training/callbacks.py ResultsWriter) and what reads them (the
study package). Kept free of Lightning so that `cv` and `ablation` start quickly."""

from __future__ import annotations

from pathlib import Path

RESULTS = "results.json"  # written once the run is tested (ResultsWriter): the run is done
CONFIG = "config.yaml"  # the resolved settings; `python -m ser_fcn test --config` of it reproduces the test
CHECKPOINTS = "checkpoints"  # ModelCheckpoint's folder
LAST_CKPT = Path(CHECKPOINTS) / "last.ckpt"  # base.yaml's ModelCheckpoint(save_last=true): where a run resumes
