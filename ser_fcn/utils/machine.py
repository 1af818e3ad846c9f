"""What machine a run used: the CPU's model name (tables, fold records, benchmarks)."""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_flags", "cpu_model"]


def _cpuinfo_field(name: str) -> str | None:
    """The first `name : value` of /proc/cpuinfo (Linux); None elsewhere or if absent."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (avx2, avx512f, amx_tile …); empty where /proc/cpuinfo is absent."""
    return set((_cpuinfo_field("flags") or "").split())
