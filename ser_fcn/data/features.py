"""The paper's log spectrogram, and an on-disk cache of it.

Cache entries are keyed by the audio file (path, size, modification time) and the
feature settings, so a changed file or setting is simply a miss. Each entry carries a
CRC of its payload: a truncated or corrupt entry is detected and rebuilt, never loaded.
Writes go to a temporary file renamed into place, so two processes building the same
cache leave it whole.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..utils import atomic
from ..corpora.audio import SAMPLE_RATE, AudioError, load_audio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpectrogramConfig:
    """Feature settings; the defaults are the paper's (section III-A)."""

    sample_rate: int = SAMPLE_RATE
    win_ms: float = 40.0  # Hamming window of 40 ms (the paper found it better than Satt's 20 ms)
    hop_ms: float = 10.0  # 10 ms shift
    n_fft: int = 800  # DFT length 800
    n_bins: int = 200  # the 200 lowest bins: 0 .. 4 kHz at 16 kHz
    eps: float = 1e-6  # log floor: a silent frame gives log(eps), finite
    # not the paper's: n_bins mel filters over 0 .. sample_rate / 2 (the log-mel input of most
    # published SER systems) in place of the n_bins lowest DFT bins
    mel: bool = False

    def __post_init__(self):
        if self.mel:
            empty = (self.mel_filters().sum(0) == 0).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"n_bins={self.n_bins} mel filters are too narrow for a {self.n_fft}-point DFT: "
                                 f"filter(s) {empty[:5]} cover no DFT bin; use fewer mel bins or a larger n_fft")
        elif self.n_bins > self.n_fft // 2 + 1:
            raise ValueError(f"n_bins={self.n_bins} exceeds the {self.n_fft // 2 + 1} bins of a {self.n_fft}-point DFT")

    def mel_filters(self) -> torch.Tensor:
        """(n_fft // 2 + 1, n_bins) triangular filters, HTK mel scale, unnormalised (torchaudio's).
        Built once per setting and shared (every spectrogram applies it): read it, never modify it."""
        return _mel_filterbank(self.n_fft // 2 + 1, self.n_bins, self.sample_rate)

    def bin_frequencies(self) -> np.ndarray:
        """Hz of each of the n_bins rows: a DFT bin's frequency, or a mel filter's centre."""
        if self.mel:
            import librosa

            return librosa.mel_frequencies(self.n_bins + 2, fmin=0.0, fmax=self.sample_rate / 2, htk=True)[1:-1]
        return np.arange(self.n_bins) * self.sample_rate / self.n_fft

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of `n_samples` (no centring: every frame is real audio)."""
        return 0 if n_samples < self.win_length else 1 + (n_samples - self.win_length) // self.hop_length

    @classmethod
    def from_hparams(cls, hparams: dict) -> "SpectrogramConfig":
        """The settings a run used, from its data module's hyperparameters (others: defaults)."""
        cast = {"float": float, "int": int, "bool": bool}
        return cls(**{f.name: cast[f.type](hparams[f.name]) for f in dataclasses.fields(cls) if f.name in hparams})

    def digest(self) -> str:
        settings = dataclasses.asdict(self)
        if not self.mel:  # linear bins: the digest (and cache) they had before the mel option
            del settings["mel"]
        blob = json.dumps(settings, sort_keys=True) + f"|format{_FORMAT}"
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def _mel_filterbank(n_freqs: int, n_bins: int, sample_rate: int) -> torch.Tensor:
    import warnings

    import torchaudio.functional as AF

    with warnings.catch_warnings():  # an all-zero filter: SpectrogramConfig.__post_init__ says so, naming it
        warnings.simplefilter("ignore", UserWarning)
        return AF.melscale_fbanks(n_freqs, 0.0, sample_rate / 2, n_bins, sample_rate, norm=None, mel_scale="htk")


def log_spectrogram(wave: torch.Tensor, cfg: SpectrogramConfig = SpectrogramConfig()) -> torch.Tensor:
    """`(n_bins, n_frames)` natural-log STFT magnitude of a 1-D wave at `cfg.sample_rate`
    (`cfg.mel`: the natural log of the mel-filtered power |STFT|^2)."""
    if wave.numel() < cfg.win_length:
        raise ValueError(f"{wave.numel()} samples is shorter than one {cfg.win_ms:g} ms window")
    # torch.stft centres the window inside each n_fft-long frame; padding the signal by
    # that offset makes frame k the 40 ms of audio starting at sample k * hop, zero-padded
    # to the 800-point DFT (the window is 0 on the padding, so no audio is invented).
    left = (cfg.n_fft - cfg.win_length) // 2
    padded = torch.nn.functional.pad(wave.float()[None], (left, cfg.n_fft - cfg.win_length - left))[0]
    spec = torch.stft(
        padded,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=torch.hamming_window(cfg.win_length),
        center=False,
        return_complex=True,
    )
    if cfg.mel:
        return torch.log(cfg.mel_filters().T @ spec.abs().square() + cfg.eps)
    return torch.log(spec[: cfg.n_bins].abs() + cfg.eps)


# --- the cache ---------------------------------------------------------------------

_MAGIC = b"SERFCN\x00\x01"
_FORMAT = 1
_HEADER = struct.Struct("<8sIIIB")  # magic, crc32 of payload, n_bins, n_frames, dtype code
_DTYPES = {0: np.float16, 1: np.float32}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class CacheEntryError(ValueError):
    """A cache file that is truncated, corrupt or of another format."""


def encode_entry(features: torch.Tensor, dtype: np.dtype) -> bytes:
    arr = np.ascontiguousarray(features.numpy().astype(dtype))
    body = arr.tobytes()
    return _HEADER.pack(_MAGIC, zlib.crc32(body), arr.shape[0], arr.shape[1], _CODES[np.dtype(dtype)]) + body


def decode_entry(blob: bytes, path: Path) -> np.ndarray:
    if len(blob) < _HEADER.size:
        raise CacheEntryError(f"{path}: truncated cache entry ({len(blob)} bytes)")
    magic, crc, n_bins, n_frames, code = _HEADER.unpack_from(blob)
    if magic != _MAGIC or code not in _DTYPES:
        raise CacheEntryError(f"{path}: not a ser_fcn cache entry")
    body = memoryview(blob)[_HEADER.size :]
    dtype = np.dtype(_DTYPES[code])
    if len(body) != n_bins * n_frames * dtype.itemsize:
        raise CacheEntryError(f"{path}: truncated cache entry")
    if zlib.crc32(body) != crc:
        raise CacheEntryError(f"{path}: corrupt cache entry (checksum mismatch)")
    return np.frombuffer(body, dtype=dtype).reshape(n_bins, n_frames)


class FeatureCache:
    """Spectrograms of audio files, computed once and kept under `root/<settings digest>/`.

    `dtype="float16"` halves memory and disk; the log magnitudes need no more precision.
    """

    def __init__(self, root: str | Path, cfg: SpectrogramConfig = SpectrogramConfig(), dtype: str = "float16"):
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        if self.dtype not in _CODES:
            raise ValueError(f"cache dtype must be float16 or float32, not {dtype}")
        self.dir = Path(root) / f"{cfg.digest()}-{self.dtype.name}"

    def entry_path(self, audio: str | Path) -> Path:
        """Where the features of `audio` as it is now live (raises AudioError if it is gone)."""
        audio = Path(audio).resolve()
        try:
            st = audio.stat()
        except FileNotFoundError:
            raise AudioError(audio, "file not found (was it moved or deleted after the manifest was written?)") from None
        key = hashlib.sha1(f"{audio}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.bin"

    def compute(self, audio: str | Path) -> torch.Tensor:
        wave = load_audio(audio, self.cfg.sample_rate)
        if wave.numel() < self.cfg.win_length:
            raise AudioError(audio, f"shorter than one analysis window ({wave.numel()} samples < {self.cfg.win_length})")
        return log_spectrogram(wave, self.cfg)

    def build(self, audio: str | Path) -> np.ndarray:
        """Compute and store the features of `audio` (overwriting a stale or broken entry)."""
        feats = self.compute(audio)
        blob = encode_entry(feats, self.dtype)
        atomic.write_bytes(self.entry_path(audio), blob)
        return decode_entry(blob, Path(audio))

    def load(self, audio: str | Path) -> np.ndarray:
        """Features of `audio`: from the cache when the entry is whole, else rebuilt."""
        path = self.entry_path(audio)
        try:
            return decode_entry(path.read_bytes(), path)
        except FileNotFoundError:
            pass
        except CacheEntryError as e:
            log.warning("%s; rebuilding it from %s", e, audio)
        return self.build(audio)

    def has(self, audio: str | Path) -> bool:
        return self.entry_path(audio).is_file()

    def n_frames(self, audio: str | Path) -> int:
        """Frame count from an entry's header (building it if absent)."""
        path = self.entry_path(audio)
        try:
            with open(path, "rb") as f:
                head = f.read(_HEADER.size)
            if len(head) == _HEADER.size and head[:8] == _MAGIC:
                return _HEADER.unpack(head)[3]
        except FileNotFoundError:
            pass
        return self.build(audio).shape[1]

    def ensure(
        self, audios: list[str | Path], progress: bool = True, skip_bad: bool = False, workers: int | None = None
    ) -> tuple[list[int | None], list[AudioError]]:
        """Build every missing entry. Returns the frame counts (None for a skipped file) and the errors.

        With `skip_bad=False` the first unusable file (in the order given) stops it with an
        :class:`AudioError` naming the file; with `skip_bad=True` such files are skipped and
        returned, to be counted.

        Missing entries are built by `workers` threads (default: 4 per CPU, at most 16), each
        op single-threaded meanwhile: reading, the STFT, the CRC and the fsync all release
        the GIL, a thread costs nothing to start (a process would import torch), and small
        ops spread over all cores by PyTorch ran ~15x slower on a busy 2-core machine.
        """
        missing = []
        for a in audios:
            try:
                if not self.has(a):
                    missing.append(a)
            except AudioError:  # the file is gone: raised here, or skipped and counted below
                if not skip_bad:
                    raise
        if missing:
            self._build_all(missing, progress, skip_bad, workers)
        frames: list[int | None] = []
        errors: list[AudioError] = []
        for a in audios:
            try:
                frames.append(self.n_frames(a))
            except AudioError as e:
                if not skip_bad:
                    raise
                frames.append(None)
                errors.append(e)
        return frames, errors

    def _build_all(self, missing: list[str | Path], progress: bool, skip_bad: bool, workers: int | None) -> None:
        if workers is None:
            workers = min(16, 4 * (os.cpu_count() or 1))
        workers = max(1, min(workers, len(missing)))

        def build(a):
            try:
                self.build(a)
                return None
            except AudioError as e:
                return e

        bar = tqdm(total=len(missing), desc=f"spectrograms -> {self.dir.name}", unit="file", disable=not progress)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # process-wide: restored below
        try:
            if workers == 1:
                results = map(build, missing)
                pool = None
            else:
                pool = ThreadPoolExecutor(workers, thread_name_prefix="ser_fcn-features")
                results = pool.map(build, missing)
            try:
                for err in results:  # in submission order: the first bad file is the one named
                    bar.update()
                    if err is not None and not skip_bad:
                        raise err
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        finally:
            torch.set_num_threads(threads)
            bar.close()
