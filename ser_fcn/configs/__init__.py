"""The package's default config: every `python -m ser_fcn fit|validate|test` starts from it."""

from pathlib import Path

BASE_CONFIG = Path(__file__).parent / "base.yaml"
