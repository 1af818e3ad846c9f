"""Synthetic stand-ins for IEMOCAP's improvised set: utterance lengths, wavs, a filled feature cache.

Lengths: lognormal durations, median 3.6 s and sigma 0.65 (mean about 4.4 s), clipped to
0.6 .. 32 s: about 92 % of the utterances last 1-10 s and the longest few reach 25-32 s,
like IEMOCAP's improvised dialogs (about 2,900 utterances of neu/hap/sad/ang/exc). At the
paper's 10 ms shift an utterance of d seconds has about 100 * d frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ser_fcn.data.features import FeatureCache, SpectrogramConfig, encode_entry
from ser_fcn.corpora.iemocap import PAPER_CLASSES
from ser_fcn.corpora.manifest import Utterance, write_manifest

IEMOCAP_IMPROVISED_UTTERANCES = 2900
FRAMES_PER_SECOND = 100
CLASSES = list(PAPER_CLASSES)
_CLASS_P = [0.45, 0.2, 0.18, 0.17]  # improvised neu/hap(+exc)/sad/ang, roughly


def durations_s(n: int = IEMOCAP_IMPROVISED_UTTERANCES, seed: int = 0) -> np.ndarray:
    """`n` utterance durations in seconds, IEMOCAP-improvised-like (see the module doc)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(3.6), 0.65, n), 0.6, 32.0)


def frame_lengths(n: int = IEMOCAP_IMPROVISED_UTTERANCES, seed: int = 0) -> np.ndarray:
    """Frame counts (100 frames/s) of `durations_s(n, seed)`."""
    return np.maximum(1, (durations_s(n, seed) * FRAMES_PER_SECOND).astype(np.int64))


def describe_lengths(lengths: np.ndarray) -> dict:
    s = np.asarray(lengths) / FRAMES_PER_SECOND
    return {
        "n_utterances": int(len(s)),
        "total_hours": round(float(s.sum()) / 3600, 2),
        "mean_s": round(float(s.mean()), 2),
        "median_s": round(float(np.median(s)), 2),
        "max_s": round(float(s.max()), 1),
        "share_1_to_10_s": round(float(((s >= 1) & (s <= 10)).mean()), 3),
    }


def write_wavs(folder: Path, durations: np.ndarray, sample_rate: int = 16000, seed: int = 0) -> list[Path]:
    """16-bit mono wavs of noise under a syllable-rate envelope, one per duration."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, d in enumerate(durations):
        n = int(d * sample_rate)
        t = np.arange(n) / sample_rate
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
        x = (0.1 * env * rng.standard_normal(n)).astype(np.float32)
        p = folder / f"utt{i:05d}.wav"
        sf.write(str(p), x, sample_rate, subtype="PCM_16")
        paths.append(p)
    return paths


def synthetic_cached_corpus(
    folder: Path,
    lengths: np.ndarray,
    cache_dtype: str = "float16",
    spec: SpectrogramConfig = SpectrogramConfig(),
    seed: int = 0,
) -> tuple[Path, Path]:
    """A manifest of `len(lengths)` utterances whose features are already in a FeatureCache.

    No audio is synthesised: every manifest row points at a small placeholder file, and
    its cache entry (keyed by that file's path, size and mtime, exactly as a real one) holds
    random log-spectrogram-like values of the given frame count. The data module finds every
    entry present and never reads the placeholders. 10 speakers in 5 sessions (IEMOCAP's).
    Returns (manifest path, cache_dir for SERDataModule).
    """
    rng = np.random.default_rng(seed)
    cache_dir = folder / "cache"
    cache = FeatureCache(cache_dir / "features", spec, cache_dtype)
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    # slices of one random pool: fast to make, distinct enough for statistics
    pool = torch.from_numpy((rng.standard_normal((spec.n_bins, int(lengths.max()) + 4096)) * 2 - 6).astype(np.float32))
    labels = rng.choice(len(CLASSES), size=len(lengths), p=_CLASS_P)
    rows = []
    for i, n in enumerate(lengths.tolist()):
        session = i % 5 + 1
        speaker = f"{session}{'FM'[(i // 5) % 2]}"
        path = audio_dir / f"Ses{session:02d}_{i:05d}.wav"
        path.write_bytes(b"placeholder: the features are in the cache\n")
        start = int(rng.integers(0, 4096))
        entry = cache.entry_path(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(encode_entry(pool[:, start : start + n], cache.dtype))
        rows.append(Utterance(f"Ses{session:02d}_{i:05d}", str(path), CLASSES[labels[i]], speaker, session, True, n / FRAMES_PER_SECOND))
    manifest = write_manifest(rows, folder / "manifest.csv")
    return manifest, cache_dir
