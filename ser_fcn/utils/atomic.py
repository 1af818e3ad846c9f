"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new
one, never half of one. The payload goes to a temporary file in the same folder (same file
system), is flushed to disk, then renamed over the target (`os.replace` is atomic on POSIX
and Windows)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["write_bytes", "write_json", "write_text"]


def write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """`obj` as JSON; an object that cannot be serialised raises before the file is touched."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")
