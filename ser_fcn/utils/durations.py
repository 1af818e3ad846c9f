"""Durations as people read them in logs and notes."""

from __future__ import annotations


def format_duration(s: float) -> str:
    """Seconds as `4m05s`, or `1h07m` from an hour on (fold logs, the needs-a-GPU note)."""
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
