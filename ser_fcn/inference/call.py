"""`python -m ser_fcn make-call (--ckpt C [--split test|val] | --manifest M.csv --speaker S) --out call.wav`

A test call for the timeline from one held-out speaker: that speaker's utterances, in a
seeded order, joined by pauses of `--pause` seconds of silence (with `--noise_dbfs`, a white
noise floor over the whole call, as a room has), written as one 16 kHz wav plus its
reference segments: `<out>.csv` (start,end,label,utterance_id) and `<out>.rttm` (the
diarization tools' form, the label in the speaker-name field). Time outside the segments is
a pause. `evaluate-timeline` scores a `predict --timeline` of the wav against them.

With `--ckpt`, the speaker is the fold's test speaker (or its validation speaker with
`--split val`, the one to choose settings on) of the run's own data settings, so the call
holds only utterances the model never trained on.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..corpora.audio import SAMPLE_RATE, AudioError, load_audio
from ..corpora.manifest import ManifestError, Utterance, read_manifest, write_manifest
from ..utils import atomic
from .checkpoint import datamodule_from_hparams, load_checkpoint

SPLITS = ("test", "val")


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    label: str
    name: str = ""  # the utterance id (CSV), or the RTTM file id


def held_out_rows(ckpt: str | Path, split: str = "test") -> tuple[list[Utterance], str]:
    """(utterances, description) of the `split` speaker(s) of the checkpoint's fold."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _, _, dm_hp = load_checkpoint(ckpt)
    dm = datamodule_from_hparams(dm_hp)
    dm.setup()
    idx = getattr(dm.split, split)
    who = dm.split.test_speaker if split == "test" else dm.split.val_speaker
    return [dm.rows[i] for i in idx], f"{split} speaker {who} of fold {dm.split.fold} ({dm.corpus_name})"


def speaker_rows(manifest: str | Path, speaker: str) -> tuple[list[Utterance], str]:
    rows = read_manifest(manifest)
    mine = [r for r in rows if r.speaker == speaker]
    if not mine:
        known = sorted({r.speaker for r in rows})
        raise ManifestError(f"{manifest}: no utterance of speaker {speaker!r} (speakers: {', '.join(known)})")
    return mine, f"speaker {speaker} of {manifest}"


def build_call(rows: list[Utterance], pause_s: float, seed: int = 0, limit: int | None = None,
               noise_dbfs: float | None = None, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[Segment]]:
    """(wave float32, reference segments): `rows` shuffled with `seed` (the first `limit`),
    pause_s of silence between two utterances; an unreadable file is an error naming it."""
    if pause_s < 0:
        raise ValueError(f"the pause must be >= 0 seconds, got {pause_s:g}")
    order = sorted(rows, key=lambda r: r.utterance_id)
    random.Random(seed).shuffle(order)
    order = order[:limit] if limit else order
    gap = np.zeros(round(pause_s * sample_rate), dtype=np.float32)
    parts, segments, t = [], [], 0
    for i, row in enumerate(order):
        if i:
            parts.append(gap)
            t += gap.size
        wave = load_audio(row.path, sample_rate).numpy().astype(np.float32, copy=False)
        parts.append(wave)
        segments.append(Segment(t / sample_rate, (t + wave.size) / sample_rate, row.label, row.utterance_id))
        t += wave.size
    call = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if noise_dbfs is not None:  # white noise of that RMS level over everything
        rng = np.random.default_rng(seed)
        call = call + (10 ** (noise_dbfs / 20) * rng.standard_normal(call.size)).astype(np.float32)
    peak = float(np.abs(call).max()) if call.size else 0.0
    if peak > 1.0:  # noise on a loud utterance: scale down rather than clip
        call /= peak
    return call, segments


def segments_csv(segments: list[Segment]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["start", "end", "label", "utterance_id"])
    writer.writerows([f"{s.start:.4f}", f"{s.end:.4f}", s.label, s.name] for s in segments)
    return out.getvalue()


def segments_rttm(segments: list[Segment], file_id: str) -> str:
    """RTTM lines: SPEAKER <file> 1 <onset> <duration> <NA> <NA> <label> <NA> <NA>."""
    return "".join(f"SPEAKER {file_id} 1 {s.start:.4f} {s.end - s.start:.4f} <NA> <NA> {s.label} <NA> <NA>\n"
                   for s in segments)


def write_call(out: str | Path, wave: np.ndarray, segments: list[Segment], rows: list[Utterance] | None = None,
               sample_rate: int = SAMPLE_RATE) -> dict:
    """call.wav, call.csv, call.rttm (and call.manifest.csv of the `rows` in the call); their paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), wave, sample_rate, subtype="PCM_16")
    csv_path, rttm_path = out.with_suffix(".csv"), out.with_suffix(".rttm")
    atomic.write_text(csv_path, segments_csv(segments))
    atomic.write_text(rttm_path, segments_rttm(segments, out.stem))
    paths = {"wav": out, "csv": csv_path, "rttm": rttm_path}
    if rows is not None:
        by_id = {r.utterance_id: r for r in rows}
        paths["manifest"] = write_manifest([by_id[s.name] for s in segments], out.with_suffix(".manifest.csv"))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_fcn make-call",
                                     description="a test call from one held-out speaker, with its reference segments")
    parser.add_argument("--ckpt", help="take the speaker of this run's fold (see --split)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="with --ckpt: the fold's test speaker (default) or its validation speaker")
    parser.add_argument("--manifest", help="or: a CSV manifest, with --speaker")
    parser.add_argument("--speaker", help="with --manifest: whose utterances")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of silence between utterances (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="the order of the utterances (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances of that order")
    parser.add_argument("--noise_dbfs", type=float, default=None,
                        help="add white noise of this RMS level (dBFS, e.g. -50) over the whole call")
    parser.add_argument("--out", required=True, help="the wav to write; .csv and .rttm beside it")
    args = parser.parse_args(argv)
    if bool(args.ckpt) == bool(args.manifest) or bool(args.manifest) != bool(args.speaker):
        parser.error("give --ckpt C, or --manifest M.csv with --speaker S")
    try:
        rows, who = held_out_rows(args.ckpt, args.split) if args.ckpt else speaker_rows(args.manifest, args.speaker)
        wave, segments = build_call(rows, args.pause, args.seed, args.limit, args.noise_dbfs)
    except (FileNotFoundError, ValueError, AudioError) as err:
        sys.exit(f"error: {err}")
    paths = write_call(args.out, wave, segments, rows)
    print(f"{len(segments)} utterances of the {who}, {args.pause:g} s pauses, seed {args.seed}: "
          f"{wave.size / SAMPLE_RATE:.1f} s\nwav {paths['wav']}\nreference {paths['csv']} and {paths['rttm']}\n"
          f"its utterances {paths['manifest']}")


if __name__ == "__main__":  # pragma: no cover
    main()
