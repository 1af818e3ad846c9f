"""SERDataModule: corpus -> manifest -> cached spectrograms -> fold -> bucketed batches."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .collate import pad_collate, segment_collate
from ..corpora.demo_corpus import REGIONS_NAME, UTTERANCES_PER_SPEAKER, generate_demo_corpus
from ..corpora.emobox import emobox_split, fold_keys, label_map_classes, read_emobox_fold
from .segments import segment_spans
from .speaker_norm import SpeakerStats, speaker_statistics, standardise
from .features import FeatureCache, SpectrogramConfig
from ..corpora.folds import FoldSplit, make_fold, thin_training
from ..corpora.iemocap import read_iemocap
from ..corpora.readers import DEFAULT as DEFAULT_CORPUS, get_corpus, read_corpus
from ..corpora.manifest import ManifestError, Utterance, count_table, read_manifest, write_manifest
from .sampler import MAX_FRAMES_PER_BATCH, NUM_BUCKETS, BucketBatchSampler
from ..utils.errors import ConfigError, CorpusNotFoundError

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$SER_FCN_CACHE`, else `~/.cache/ser_fcn`."""
    return Path(os.environ.get("SER_FCN_CACHE", Path.home() / ".cache" / "ser_fcn"))


def input_features(cache: FeatureCache, row: Utterance, speaker_stats: dict[str, SpeakerStats] | None,
                   start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames start..stop-1 of a row (default: all) as the model's input sees them, float32: from
    the cache, standardised with its speaker's statistics when `speaker_stats` (data.speaker_norm)."""
    feats = cache.load(row.path)[:, start:stop].astype(np.float32)
    return standardise(feats, speaker_stats[row.speaker]) if speaker_stats is not None else feats


class SpectrogramDataset(Dataset):
    """Utterances of one split (or their 3 s segments), read from the feature cache.

    Each item is one row of `self.items`: (manifest row, first frame, last frame).
    """

    def __init__(
        self,
        cache: FeatureCache,
        rows: list[Utterance],
        indices: list[int],
        frames: list[int],
        classes: list[str],
        segment_frames: int | None = None,
        speaker_stats: dict[str, SpeakerStats] | None = None,
    ):
        self.cache, self.rows, self.indices = cache, rows, indices
        self.speaker_stats = speaker_stats  # speaker -> per-bin (mean, std): standardise with them
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.segment_frames = segment_frames
        self.items: list[tuple[int, int, int, int]] = []  # (position in split, row, start, stop)
        for pos, (row, n) in enumerate(zip(indices, frames)):
            spans = segment_spans(n, segment_frames) if segment_frames else [(0, n)]
            for start, stop in spans:
                self.items.append((pos, row, start, stop))

    @property
    def lengths(self) -> list[int]:
        return [stop - start for _, _, start, stop in self.items]

    @property
    def padded_lengths(self) -> list[int]:
        """What each item costs in a batch: segment_collate pads every segment to segment_frames."""
        if self.segment_frames:
            return [self.segment_frames] * len(self.items)
        return self.lengths

    @property
    def utterance_ids(self) -> list[str]:
        return [self.rows[i].utterance_id for i in self.indices]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        pos, row, start, stop = self.items[i]
        utt = self.rows[row]
        feats = input_features(self.cache, utt, self.speaker_stats, start, stop)
        return {
            "features": torch.from_numpy(feats),
            "label": self.class_index[utt.label],
            "utt_index": pos,
            "utterance_id": utt.utterance_id,
        }


class SERDataModule(L.LightningDataModule):
    """Speaker-independent folds of an emotional speech corpus, as length-bucketed batches.

    Args:
        root: the folder of the corpus `corpus` (an `IEMOCAP_full_release` folder by default).
            Give this or `manifest`, not both.
        manifest: a CSV manifest (see `ser_fcn.corpora.manifest.COLUMNS`) of any corpus.
            With neither, the synthetic demo corpus is built (once) and used.
        emobox: one corpus's folder of EmoBox's metadata (`label_map.json`, `fold_<k>/`): train
            and test on EmoBox's fold `fold`, validation carved from its training part
            (ser_fcn/corpora/emobox.py). Needs `audio_root`. Classes default to its label map's.
        audio_root: the folder that the EmoBox `wav` paths are relative to.
        corpus: what `root` holds: iemocap (default), emodb or ravdess (ser_fcn/corpora/readers.py);
            classes then default to all of that corpus's classes (IEMOCAP: the paper's four).
        fold: 1..number of sessions (5 for IEMOCAP); the session held out. With `emobox`:
            EmoBox's `fold_<fold>`.
        swap_speakers: exchange the held-out session's validation and test speakers.
        validate_both: also validate on the test speaker, as a second validation set logged as
            `val_swap/*` (never as `val/*`, which alone picks the fold's checkpoint). Fold k and
            fold k-swap train on the same speakers with the same seed, so one training run serves
            both: `fit --swap_run_dir` keeps the best epoch by `val_swap/ua` for the swapped fold
            and tests it on the validation speaker (`exchange_held_out`). Not for EmoBox folds.
        train_sessions: train on only this many of the sessions not held out (those after the
            held-out one, wrapping round: every session trains equally often over the folds), for a
            learning curve over training speakers; validation and test speakers are unchanged.
            Default: all of them. Not for EmoBox folds.
        train_fraction: train on only this fraction of each training speaker's utterances of each
            class (at least one; drawn with `seed`): the data of fewer speakers from all of them,
            to tell the number of speakers from the number of utterances. Default: all.
        classes: the label set, in the order of the model's outputs.
        merge_exc: IEMOCAP only: count `exc` as `hap`.
        include_scripted: IEMOCAP only: keep scripted dialogs too (the paper does not).
        win_ms, hop_ms, n_fft, n_bins: spectrogram settings (the paper's by default).
        mel: n_bins log-mel bands over 0 .. 8 kHz instead of the n_bins lowest DFT bins (not the
            paper's; e.g. `--data.mel true --data.n_bins 128`).
        cache_dir: where spectrograms, manifests and the demo corpus are kept.
        cache_dtype: float16 (default; half the memory) or float32.
        max_frames_per_batch: cap on padded frames (batch size x longest) per training batch;
            validation and test batches take twice as many (no gradients).
        num_buckets: length buckets of the sampler (defaults: data/sampler.py, measured by `make bench`).
        speaker_norm: standardise every bin with its speaker's mean and std over all of that
            speaker's utterances, test speakers' included (no labels used; data/speaker_norm.py).
            Not the paper's.
        segmented: cut utterances into `segment_frames` segments (the baselines' input).
        skip_bad_audio: skip (and count) unusable wav files instead of stopping.
        demo_utterances_per_speaker: size of the demo corpus when it is used.
    """

    def __init__(
        self,
        root: str | None = None,
        manifest: str | None = None,
        emobox: str | None = None,
        audio_root: str | None = None,
        corpus: str = DEFAULT_CORPUS,
        fold: int = 1,
        swap_speakers: bool = False,
        validate_both: bool = False,
        train_sessions: int | None = None,
        train_fraction: float | None = None,
        classes: list[str] | None = None,
        merge_exc: bool = False,
        include_scripted: bool = False,
        win_ms: float = SpectrogramConfig.win_ms,
        hop_ms: float = SpectrogramConfig.hop_ms,
        n_fft: int = SpectrogramConfig.n_fft,
        n_bins: int = SpectrogramConfig.n_bins,
        mel: bool = SpectrogramConfig.mel,
        cache_dir: str | None = None,
        cache_dtype: str = "float16",
        max_frames_per_batch: int = MAX_FRAMES_PER_BATCH,
        num_buckets: int = NUM_BUCKETS,
        speaker_norm: bool = False,
        segmented: bool = False,
        segment_frames: int = 300,  # 3 s segments at 10 ms shift (Satt et al. 2017, the paper's baselines)
        num_workers: int = 0,
        seed: int = 0,
        skip_bad_audio: bool = False,
        demo_utterances_per_speaker: int = UTTERANCES_PER_SPEAKER,
        progress: bool = True,
    ):
        super().__init__()
        if root and manifest:
            raise ConfigError("give data.root (an IEMOCAP tree) or data.manifest (a CSV), not both")
        if emobox and (root or manifest or not audio_root):
            raise ConfigError("data.emobox needs data.audio_root (the folder its wav paths are relative to) "
                             "and neither data.root nor data.manifest")
        if emobox and (merge_exc or include_scripted):  # would be ignored: the fold files fix the subset
            raise ConfigError("data.merge_exc / data.include_scripted do not apply to data.emobox: its fold files and "
                             "label_map.json fix the utterances and labels (IEMOCAP's merge exc into Happy)")
        if emobox and train_sessions is not None:
            raise ConfigError("data.train_sessions needs folds by session; EmoBox's fold files fix the training part")
        if emobox and validate_both:
            raise ConfigError("data.validate_both needs a held-out session with a validation and a test speaker; "
                             "EmoBox folds carve validation from the training part")
        reader = get_corpus(corpus)
        if corpus != DEFAULT_CORPUS and (manifest or emobox or not root):
            raise ConfigError(f"data.corpus {corpus} reads data.root (its folder): give data.root, "
                             "and neither data.manifest nor data.emobox")
        if corpus != DEFAULT_CORPUS and (merge_exc or include_scripted):
            raise ConfigError(f"data.merge_exc / data.include_scripted apply to IEMOCAP only, not to data.corpus {corpus}")
        self.save_hyperparameters()
        self.classes = list(classes) if classes else label_map_classes(emobox) if emobox else list(reader.classes)
        try:
            self.spec = SpectrogramConfig.from_hparams(self.hparams)
        except ValueError as e:
            raise ConfigError(f"data.n_bins / data.mel: {e}") from None
        self.cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cache = FeatureCache(self.cache_root / "features", self.spec, cache_dtype)
        self.split: FoldSplit | None = None
        self.exchanged = False  # exchange_held_out() was called: val and test swapped after fit
        self.datasets: dict[str, SpectrogramDataset] = {}
        self.skipped: list = []
        self.class_counts: list[int] = []
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None
        self.speaker_stats: dict[str, SpeakerStats] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def n_bins(self) -> int:
        return self.spec.n_bins

    @property
    def corpus_name(self) -> str:
        hp = self.hparams
        if hp.emobox:
            return f"EmoBox {Path(hp.emobox).resolve().name}"
        if hp.corpus != DEFAULT_CORPUS:
            return get_corpus(hp.corpus).title
        if hp.root and (Path(hp.root) / REGIONS_NAME).is_file():
            return "planted demo (synthetic)"  # demo-data --planted, read as an IEMOCAP tree
        return "manifest" if hp.manifest else "IEMOCAP" if hp.root else "demo (synthetic)"

    # --- corpus -> manifest ---------------------------------------------------------

    def _demo_root(self) -> Path:
        return self.cache_root / f"demo-{self.hparams.demo_utterances_per_speaker}"

    def manifest_path(self) -> Path:
        """The manifest this data module trains from: the user's, or one it derives."""
        hp = self.hparams
        if hp.manifest:
            return Path(hp.manifest)
        source = Path(hp.emobox or hp.root).resolve() if hp.emobox or hp.root else self._demo_root()
        key = f"{source}|{self.classes}|{hp.merge_exc}|{hp.include_scripted}"
        if hp.corpus != DEFAULT_CORPUS:  # a file added or removed changes a folder's mtime: a new manifest
            folders = [source, *sorted(p for p in source.iterdir() if p.is_dir())] if source.is_dir() else []
            key += f"|{hp.corpus}|" + ",".join(str(f.stat().st_mtime_ns) for f in folders)
        if hp.emobox:
            files = sorted(Path(hp.emobox).glob(f"fold_{hp.fold}/*.jsonl"))  # an edited fold file: a new manifest
            key += f"|{Path(hp.audio_root).resolve()}|fold{hp.fold}|" + ",".join(f"{f.name}:{f.stat().st_mtime_ns}" for f in files)
        return self.cache_root / "manifests" / f"{source.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.csv"

    def _build_manifest(self) -> Path:
        hp = self.hparams
        if hp.manifest:
            if not Path(hp.manifest).is_file():
                raise ManifestError(f"data.manifest {hp.manifest}: file not found")
            return Path(hp.manifest)
        if hp.emobox:
            rows, summary = read_emobox_fold(hp.emobox, hp.fold, hp.audio_root, self.classes, progress=hp.progress)
            return self._write_rows(rows, summary, hp.emobox)
        if hp.corpus != DEFAULT_CORPUS:
            rows, summary = read_corpus(hp.corpus, hp.root, self.classes, progress=hp.progress)
            return self._write_rows(rows, summary, hp.root)
        if hp.root:
            root = Path(hp.root)
            if not root.exists():
                raise CorpusNotFoundError(f"data.root {root}: no such folder (an IEMOCAP_full_release tree is expected)")
        else:
            root = self._demo_root()
            log.warning(
                "\n" + "=" * 78 + "\n"
                "No data.root or data.manifest given: using the SYNTHETIC DEMO CORPUS\n"
                f"  {root}\n"
                "It is generated speech-like noise in IEMOCAP's layout, NOT IEMOCAP. Its\n"
                "figures say nothing about the paper's. Set data.root to IEMOCAP_full_release.\n"
                + "=" * 78
            )
            root = generate_demo_corpus(root, utterances_per_speaker=hp.demo_utterances_per_speaker, progress=hp.progress).root
        rows, summary = read_iemocap(root, self.classes, hp.merge_exc, hp.include_scripted, progress=hp.progress)
        return self._write_rows(rows, summary, root)

    def _write_rows(self, rows: list[Utterance], summary, root) -> Path:
        log.info("%s reader: %s", "EmoBox" if self.hparams.emobox else get_corpus(self.hparams.corpus).title, summary.report())
        if summary.bad_audio:
            log.warning("%d wav files were skipped; see the list above", len(summary.bad_audio))
        if not rows:
            raise ConfigError(f"{root}: no utterances of classes {self.classes} left")
        return write_manifest(rows, self.manifest_path())

    def prepare_data(self) -> None:
        """Once per node: build the demo corpus / manifest and every spectrogram."""
        path = self._build_manifest()
        rows = read_manifest(path, self.classes)
        _, errors = self.cache.ensure([r.path for r in rows], progress=self.hparams.progress, skip_bad=self.hparams.skip_bad_audio)
        self._report_skipped(errors)

    def _report_skipped(self, errors: list) -> None:
        if errors:
            log.warning(
                "SKIPPED %d unusable wav file(s) (data.skip_bad_audio=true):\n%s",
                len(errors),
                "\n".join(f"  {e}" for e in errors[:20]),
            )

    # --- fold, features, statistics -------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        path = self.manifest_path()
        if not path.is_file():
            path = self._build_manifest()
        rows = read_manifest(path, self.classes)
        frames, errors = self.cache.ensure([r.path for r in rows], progress=hp.progress, skip_bad=hp.skip_bad_audio)
        self.skipped = errors
        if errors:
            keep = [i for i, n in enumerate(frames) if n is not None]
            rows, frames = [rows[i] for i in keep], [frames[i] for i in keep]
        self.rows = rows
        if hp.emobox:
            self.split = split = emobox_split(rows, fold_keys(hp.emobox, hp.fold), hp.fold, hp.seed)
        else:
            self.split = split = make_fold(rows, hp.fold, hp.swap_speakers, hp.train_sessions)
        if hp.train_fraction is not None:
            self.split = split = thin_training(rows, split, hp.train_fraction, hp.seed)
        log.info("%s", split.describe())
        seg = hp.segment_frames if hp.segmented else None
        self.speaker_stats = self.speaker_stats_of(rows)
        for name in ("train", "val", "test"):
            idx = getattr(split, name)
            if not idx:
                raise ConfigError(f"{split.describe()}: the {name} split is empty")
            self.datasets[name] = SpectrogramDataset(self.cache, rows, idx, [frames[i] for i in idx], self.classes, seg, self.speaker_stats)
        # Class weights follow what the loss sees: segments in segmented mode, else utterances.
        counts = Counter(rows[row].label for _, row, _, _ in self.datasets["train"].items)
        self.class_counts = [counts[c] for c in self.classes]
        self.feature_mean, self.feature_std = self._train_statistics()
        log.info("train class counts: %s", dict(zip(self.classes, self.class_counts)))
        log.info("utterances per speaker and class:\n%s", count_table(rows, self.classes))

    def exchange_held_out(self) -> None:
        """Swap the validation and test speakers of the set-up fold (fold k becomes fold k-swap),
        so that the next `test` scores the other speaker (`fit --swap_run_dir`)."""
        if self.split is None:
            raise RuntimeError("exchange_held_out() before setup(): there is no fold to swap yet")
        self.split = self.split.swapped()
        self.datasets["val"], self.datasets["test"] = self.datasets["test"], self.datasets["val"]
        self.exchanged = not self.exchanged

    @property
    def speakers_swapped(self) -> bool:
        """Whether the fold's current test speaker is the swapped fold's (data.swap_speakers, or
        exchanged after a shared training run)."""
        return bool(self.hparams.swap_speakers) != self.exchanged

    def speaker_stats_of(self, rows: list[Utterance]) -> dict[str, SpeakerStats] | None:
        """Under speaker_norm, each speaker's per-bin statistics over its rows of `rows` (cached
        features; every split's speakers alike: no labels are used); else None."""
        if not self.hparams.speaker_norm:
            return None
        return speaker_statistics([r.speaker for r in rows], lambda i: self.cache.load(rows[i].path))

    def features(self, row: Utterance) -> np.ndarray:
        """A row's whole-utterance features as the model's input sees them (`input_features`)."""
        return input_features(self.cache, row, self.speaker_stats)

    def _train_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frequency-bin mean and std over every training frame (float64 sums)."""
        total = np.zeros(self.spec.n_bins)
        total_sq = np.zeros(self.spec.n_bins)
        frames = 0
        for i in self.split.train:
            feats = self.features(self.rows[i]).astype(np.float64)
            total += feats.sum(1)
            total_sq += (feats * feats).sum(1)
            frames += feats.shape[1]
        mean = total / frames
        std = np.sqrt(np.maximum(total_sq / frames - mean * mean, 1e-8))
        return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

    # --- loaders ----------------------------------------------------------------------

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        return 1, 0

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return self.loader(self.datasets[name], name, shuffle)

    def loader(self, ds: SpectrogramDataset, name: str = "eval", shuffle: bool = False,
               generator: torch.Generator | None = None) -> DataLoader:
        """Bucketed batches of `ds` with this run's caps and collate (also for datasets built
        outside setup, e.g. by `evaluate`); `generator`: the DataLoader's (None: the global RNG)."""
        replicas, rank = self._world()
        cap, buckets = self.hparams.max_frames_per_batch, self.hparams.num_buckets
        if name != "train":
            # No gradients, and batching cannot change an answer (the encoder masks padding):
            # twice the frames, and buckets of >= 16 utterances so a small split is not
            # cut into batches of one or two.
            cap, buckets = 2 * cap, max(1, min(buckets, len(ds) // 16))
        sampler = BucketBatchSampler(
            ds.padded_lengths,
            max_frames_per_batch=cap,
            num_buckets=buckets,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_replicas=replicas,
            rank=rank,
        )
        if sampler.cap_relaxed:
            log.warning(
                "%s split: %d utterances are too few for %d equal, frame-capped shares per rank; "
                "using %d batches, some above max_frames_per_batch=%d",
                name, len(ds), replicas, sampler.total_batches, cap,
            )
        if shuffle and len(sampler.buckets) > 1 and sampler.same_batches_every_epoch:
            log.warning(
                "%s split: each of its %d length buckets fits one batch, so every epoch has the same "
                "batches (only their order changes); fewer buckets (data.num_buckets) or a lower "
                "data.max_frames_per_batch let the batches vary",
                name, len(sampler.buckets),
            )
        collate = partial(segment_collate, width=self.hparams.segment_frames) if self.hparams.segmented else pad_collate
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        if self.hparams.validate_both:  # dataloader 1 is the test speaker: SERModule logs it as val_swap/*
            # Each epoch a DataLoader draws its iterator's base seed from the global RNG unless it
            # has a generator of its own; the second one gets one, so training (dropout) draws the
            # same numbers as in a run with one validation set and the shared run matches both folds.
            return [self._loader("val", shuffle=False), self.loader(self.datasets["test"], "test", generator=torch.Generator())]
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
