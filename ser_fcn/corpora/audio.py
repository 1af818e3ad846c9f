"""Reading audio: any rate and channel count in, 16 kHz mono float32 out.

Every problem with a file raises :class:`AudioError`, whose message starts with the
file's path, so the caller can either stop with it or skip the file and count it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ..utils.errors import UserError

SAMPLE_RATE = 16_000  # the paper's input rate (IEMOCAP is recorded at 16 kHz)
MIN_DURATION_S = 0.040  # one 40 ms analysis window: a shorter file has no spectrogram frame


class AudioError(UserError, ValueError):
    """A wav that cannot be used: missing, empty, truncated, unreadable or too short."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


def _wav_declared_data_bytes(path: Path) -> tuple[int, int] | None:
    """(declared size, bytes present) of a RIFF/WAVE file's data chunk, or None.

    libsndfile silently reads what is there when a wav was cut short, so a
    truncated file would pass as a shorter utterance; the header says otherwise.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streaming writers leave it unset
                    return None
                return chunk_size, size - offset - 8
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def check_audio_file(path: str | Path) -> sf._SoundFileInfo:
    """Header-level checks (cheap: no samples decoded). Returns soundfile's info."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError(path, f"not a readable audio file ({e})") from e
    declared = _wav_declared_data_bytes(path)
    if declared is not None and declared[1] < declared[0]:
        raise AudioError(
            path, f"truncated: header declares {declared[0]} bytes of audio, file holds {declared[1]}"
        )
    if info.frames <= 0:
        raise AudioError(path, "holds no samples")
    return info


def check_duration(path: str | Path, min_duration_s: float = MIN_DURATION_S) -> sf._SoundFileInfo:
    """`check_audio_file`, and at least `min_duration_s` of audio (the readers' check)."""
    info = check_audio_file(path)
    if info.frames < min_duration_s * info.samplerate:
        raise AudioError(path, f"shorter than one analysis window ({info.frames / info.samplerate * 1000:.1f} ms)")
    return info


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Samples of `path` as a 1-D float32 tensor at `sample_rate`, channels averaged."""
    check_audio_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError(path, f"could not decode samples ({e})") from e
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)  # no copy of a mono file (long files)
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    if not torch.isfinite(wave).all():
        raise AudioError(path, "contains NaN or Inf samples")
    return wave
