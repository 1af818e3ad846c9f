"""Read back what an offline W&B run logged (importable test helper).

An offline run folder (`wandb/offline-run-*/`) holds `run-<id>.wandb`, W&B's transaction log:
a 7-byte file header (":W&B", magic, version) and then leveldb log records (32 KiB blocks,
each record a 7-byte header: crc32 of type + data, length, type FULL/FIRST/MIDDLE/LAST), whose
payloads are `wandb_internal_pb2.Record` protobufs. wandb >= 0.19 dropped its Python reader
(`wandb.sdk.internal.datastore`), hence this one. Logged tables and images are files under
`files/media/`, which the history record points to.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    """The protobuf records of a `run-*.wandb` file, checksums checked."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER]) if left >= HEADER else (0, 0, 0)
        if kind == 0:  # a block's zero trailer
            pos += left
            continue
        if pos + HEADER + length > len(data):  # still being written
            return
        body = data[pos + HEADER:pos + HEADER + length]
        assert zlib.crc32(bytes([kind]) + body) == crc, f"{path}: bad checksum at byte {pos}"
        pos += HEADER + length
        parts.append(body)
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _nested(items) -> dict:
    out: dict = {}
    for item in items:
        keys = [item.key] if item.key else list(item.nested_key)
        d = out
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    folder: Path
    group: str = ""
    job_type: str = ""
    name: str = ""
    project: str = ""
    history: list[dict] = field(default_factory=list)  # one dict per logged step
    summary: dict = field(default_factory=dict)

    def logged(self, key: str) -> list[dict]:
        """Every value logged under `key` (a media value: its {"_type", "path", …})."""
        return [step[key] for step in self.history if key in step]

    def table(self, key: str) -> dict:
        """The last wandb.Table logged under `key`: {"columns", "data"} from its .table.json."""
        found = self.logged(key)
        assert found, f"no {key} in {self.folder}"
        return json.loads((self.folder / "files" / found[-1]["path"]).read_text())


def _complete_records(log: Path, timeout: float) -> list:
    """The records of a finished run's log. W&B's service process writes the log on its own
    (asynchronously), so a run's `finish()` can return before the log ends with its exit record."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(log)) if log.stat().st_size >= HEADER else []
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            assert found and found[-1].WhichOneof("record_type") == "exit", f"{log}: no exit record after {timeout} s"
            return found
        time.sleep(0.2)


def read_run(folder: Path, timeout: float = 60) -> OfflineRun:
    """An offline run folder's run record (group, job type, name), history and summary."""
    (log,) = Path(folder).glob("run-*.wandb")
    run = OfflineRun(Path(folder))
    for r in _complete_records(log, timeout):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.group, run.job_type, run.name, run.project = r.run.run_group, r.run.job_type, r.run.display_name, r.run.project
        elif kind == "history":
            run.history.append(_nested(r.history.item))
        elif kind == "summary":
            run.summary.update(_nested(r.summary.update))
    return run


def offline_runs(parent: Path) -> list[OfflineRun]:
    """Every offline run under `parent/wandb/`, oldest first."""
    return [read_run(f) for f in sorted(Path(parent).glob("wandb/offline-run-*"))]
