"""`python -m ser_fcn predict --ckpt PATH [--out preds.jsonl] [--figures DIR] FILE_OR_DIR ...`

Emotion posteriors of audio files (any rate and channel count; read as 16 kHz mono),
each file whole: the model is fully convolutional, so a recording of minutes is one
forward pass whose memory grows linearly with its length.

Per file: a JSON line {path, label, probabilities {class: p}, duration_s, flags, error}
and a row of the table printed on the terminal. A file that cannot be used (unreadable,
shorter than one analysis window) gets an error and the others still get their answers;
the exit status is 1 when any file failed. Flags: "silent" (peak below -80 dBFS: the
answer means nothing), "shorter than the receptive field, padded" (fewer frames than
the encoder's `min_frames`: zero-padded up to it, as the model does).

A model trained with `data.speaker_norm` standardises each file with the file's own statistics
(the timeline: those of its speech regions), standing for its speaker's; `--same-speaker`
pools them over all the files given, as training pooled a speaker's utterances
(data/speaker_norm.py).

`--timeline [--window 8.0] [--hop 2.0] [--exact_windows]`: emotion over time as well, a
"timeline" list in each JSON line: windows over the speech, pauses labelled "pause"
(inference/timeline.py says how regions and windows are found and scored). A file longer
than LONG_FILE_S takes its whole-file answer from the same chunked encoding of its speech.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..corpora.audio import AudioError, load_audio
from ..data.features import SpectrogramConfig, log_spectrogram
from ..data.speaker_norm import SpeakerStats, own_statistics, standardise
from .checkpoint import load_checkpoint
from ..models.receptive_field import CellGrid, encoder_grid
from ..figures.panels import Panel, draw_panels
from ..training.forward import attention_of, segmented_probs
from ..figures.timeline import save_timeline_figures
from .timeline import (DEFAULT_HOP_S, DEFAULT_WINDOW_S, encode_regions, speech_statistics, summarise, supports_shared,
                       timeline, whole_file_probs)
from .vad import speech_regions

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4  # -80 dBFS: below 16-bit dither; such a file holds no speech
FLAG_SILENT = "silent"
FLAG_SHORT = "shorter than the receptive field, padded"
FLAG_POOLED = "whole-file answer pooled from the chunked encoding of its speech"
LONG_FILE_S = 600.0  # longer files are never encoded in one pass (memory grows with length)
# what soundfile (libsndfile) reads, by extension; `.raw` needs its format spelled out, so no
AUDIO_EXTENSIONS = frozenset(
    {f".{k.lower()}" for k in sf.available_formats()} - {".raw"}
    | {".aif", ".aifc", ".oga", ".opus", ".snd", ".sph"}
)


@dataclass
class Prediction:
    path: str
    label: str | None = None  # the predicted class
    probabilities: dict[str, float] | None = None
    duration_s: float | None = None
    flags: list[str] = field(default_factory=list)
    error: str | None = None  # why the file got no answer (its path is `path`)
    timeline: list[dict] | None = None  # with --timeline: [{start, end, label, probabilities}]


@dataclass
class Analysis:
    """A prediction plus what its figure needs."""

    prediction: Prediction
    spec: np.ndarray | None = None
    attention: np.ndarray | None = None


def collect_files(inputs: list[str | Path]) -> list[Path]:
    """Named files as they are; folders searched recursively for audio extensions
    (hidden files such as macOS `._*` skipped). A missing path is kept: it fails per file."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [Path(root) / n for n in sorted(names)
                          if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_EXTENSIONS]
        else:
            files.append(item)
    return files


class Predictor:
    """A trained checkpoint, ready to answer for waves or files."""

    def __init__(self, ckpt: str | Path, device: str = "cpu"):
        self.module, self.cfg, data_hparams = load_checkpoint(ckpt, device)
        # a segmented baseline answers for a file as it was tested: 3 s segments, posteriors averaged
        self.segment_frames: int | None = int(data_hparams["segment_frames"]) if data_hparams.get("segmented") else None
        self.class_names: list[str] = list(self.module.class_names)
        self.min_frames = int(getattr(self.module.net, "min_frames", 1))
        self.grid: CellGrid | None = encoder_grid(self.module.net.encoder) if hasattr(self.module.net, "encoder") else None
        self.speaker_norm = bool(data_hparams.get("speaker_norm"))  # standardise inputs as training did
        self.speaker_stats: SpeakerStats | None = None  # --same-speaker: every file's; None: each file's own

    def pool_speaker(self, paths: list[Path]) -> list[str]:
        """--same-speaker: standardise every file with statistics over all of `paths` (a
        speaker_norm model; others need none). Returns the problems of the files left out."""
        if not self.speaker_norm:
            return []
        problems = []

        def load(i: int) -> torch.Tensor:  # one file at a time: only the sums are kept
            try:
                return log_spectrogram(load_audio(paths[i], self.cfg.sample_rate), self.cfg)
            except (AudioError, ValueError) as err:
                problems.append(f"{paths[i]}: {getattr(err, 'problem', err)}")
                return torch.zeros(self.cfg.n_bins, 0)

        try:
            self.speaker_stats = own_statistics(len(paths), load)
        except ValueError:  # not one frame in any file: each file fails on its own below
            self.speaker_stats = None
        return problems

    def model_input(self, spec: torch.Tensor, stats: SpeakerStats | None = None) -> torch.Tensor:
        """The spectrogram as the model was trained on it: under speaker_norm standardised with
        `stats`, else the --same-speaker ones, else the spectrogram's own."""
        if not self.speaker_norm:
            return spec
        if stats is None:
            stats = self.speaker_stats if self.speaker_stats is not None else own_statistics(1, lambda _: spec)
        return standardise(spec, stats)

    def analyse_wave(self, wave: torch.Tensor, path: str = "<wave>", stats: SpeakerStats | None = None) -> Analysis:
        """`wave`: 1-D float at the model's sample rate; `stats`: see `model_input`."""
        cfg: SpectrogramConfig = self.cfg
        pred = Prediction(str(path), duration_s=round(wave.numel() / cfg.sample_rate, 4))
        if wave.numel() < cfg.win_length:
            pred.error = (f"{pred.duration_s * 1000:.1f} ms of audio is shorter than one "
                          f"{cfg.win_ms:g} ms analysis window: no spectrogram")
            return Analysis(pred)
        if float(wave.abs().max()) < SILENCE_PEAK:
            pred.flags.append(FLAG_SILENT)
        spec = log_spectrogram(wave, cfg)
        x = self.model_input(spec, stats)
        if self.segment_frames:
            probs, att = segmented_probs(self.module, x, self.segment_frames), None
        else:
            if spec.shape[-1] < self.min_frames:
                pred.flags.append(FLAG_SHORT)
            probs, att = attention_of(self.module, x)
        pred.probabilities = {c: float(p) for c, p in zip(self.class_names, probs)}
        pred.label = self.class_names[int(np.argmax(probs))]
        return Analysis(pred, spec.numpy(), att)

    def analyse_file(self, path: str | Path) -> Analysis:
        try:
            wave = load_audio(path, self.cfg.sample_rate)
        except AudioError as e:
            return Analysis(Prediction(str(path), error=e.problem))
        return self.analyse_wave(wave, str(path))

    def analyse_timeline(self, path: str | Path, window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S,
                         exact: bool = False) -> Analysis:
        """The whole-file answer and the timeline of one file."""
        try:
            wave = load_audio(path, self.cfg.sample_rate)
        except AudioError as e:
            return Analysis(Prediction(str(path), error=e.problem))
        regions = speech_regions(wave, self.cfg.sample_rate)
        stats = None
        if self.speaker_norm:
            stats = self.speaker_stats if self.speaker_stats is not None else speech_statistics(wave, self.cfg, regions)
        shared = not exact and supports_shared(self.module.net)
        cells = encode_regions(self.module, wave, self.cfg, regions, stats=stats) if shared else None
        if cells and wave.numel() > LONG_FILE_S * self.cfg.sample_rate:
            probs = whole_file_probs(self.module, torch.cat(cells, -1))  # pooled over the speech only
            pred = Prediction(str(path), self.class_names[int(np.argmax(probs))],
                              {c: float(p) for c, p in zip(self.class_names, probs)},
                              round(wave.numel() / self.cfg.sample_rate, 4), [FLAG_POOLED])
            if float(wave.abs().max()) < SILENCE_PEAK:
                pred.flags.append(FLAG_SILENT)
            analysis = Analysis(pred)
        else:
            analysis = self.analyse_wave(wave, str(path), stats)
        if analysis.prediction.error is None:
            analysis.prediction.timeline = timeline(self.module, wave, self.cfg, self.class_names, window_s, hop_s,
                                                    regions, cells, stats=stats)
        return analysis

    def figure(self, analysis: Analysis):
        pred = analysis.prediction
        seconds = analysis.spec.shape[-1] * self.cfg.hop_ms / 1000
        title = f"{Path(pred.path).name}: {pred.label} (p={pred.probabilities[pred.label]:.2f})"
        if pred.flags:
            title += f"  [{'; '.join(pred.flags)}]"
        width = min(40.0, max(6.0, 2.0 + 1.2 * seconds))  # longer files: wider, up to a limit
        return draw_panels([Panel(analysis.spec, analysis.attention, title)], self.cfg, self.grid, width_per_panel=width)


# --- output ----------------------------------------------------------------------------------


def _short(path: str, width: int) -> str:
    try:
        rel = os.path.relpath(path)
        path = rel if not rel.startswith("..") else path
    except ValueError:
        pass
    return path if len(path) <= width else "…" + path[-(width - 1):]


def format_table(preds: list[Prediction], class_names: list[str]) -> str:
    width = max([20] + [min(48, len(_short(pred.path, 48))) for pred in preds])
    head = f"{'file':<{width}}  {'dur s':>7}  {'label':<6}" + "".join(f"{c[:6]:>7}" for c in class_names) + "  note"
    lines = [head, "-" * len(head)]
    for pred in preds:
        name = _short(pred.path, width)
        if pred.error:
            lines.append(f"{name:<{width}}  {'':>7}  {'-':<6}" + " " * 7 * len(class_names) + f"  ERROR: {pred.error}")
            continue
        probs = "".join(f"{pred.probabilities[c]:>7.3f}" for c in class_names)
        note = "; ".join(pred.flags)
        lines.append(f"{name:<{width}}  {pred.duration_s:>7.2f}  {pred.label:<6}{probs}  {note}".rstrip())
    return "\n".join(lines)


def _figure_path(folder: Path, path: str, used: set[str]) -> Path:
    stem, n = Path(path).stem or "audio", 1
    name = stem
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return folder / f"{name}.png"


def _analyse(predictor: Predictor, path: Path, timeline_args: dict | None) -> Analysis:
    """One file's analysis; whatever goes wrong with it is that file's error, and the run goes on."""
    try:
        if timeline_args is None:
            return predictor.analyse_file(path)
        return predictor.analyse_timeline(path, **timeline_args)
    except Exception as err:  # noqa: BLE001 - reported per file in the table and the JSON line
        log.warning("%s: %s: %s", path, type(err).__name__, err)
        return Analysis(Prediction(str(path), error=f"{type(err).__name__}: {err}"))


def run(ckpt: str | Path, inputs: list[str | Path], out: str | Path | None = None,
        figures: str | Path | None = None, device: str = "cpu", stream=None,
        timeline_args: dict | None = None, same_speaker: bool = False) -> list[Prediction]:
    """Predict every file of `inputs`; print the table and summary to `stream` (stdout).
    `timeline_args` ({window_s, hop_s, exact}): add each file's timeline. `same_speaker`: the
    files are one speaker's (a speaker_norm model standardises them with their pooled statistics)."""
    stream = stream or sys.stdout
    predictor = Predictor(ckpt, device)
    if timeline_args is not None and not timeline_args.get("exact") and not supports_shared(predictor.module.net):
        print("timeline: this model has no attention head; each window is run alone", file=stream)
    files = collect_files(inputs)
    if same_speaker and not predictor.speaker_norm:
        print("--same-speaker: this model was trained without data.speaker_norm; it changes nothing", file=stream)
    elif same_speaker:
        left_out = predictor.pool_speaker(files)
        print(f"--same-speaker: standardised with the statistics of {len(files) - len(left_out)} of {len(files)} files"
              + "".join(f"\n  left out of them: {p}" for p in left_out), file=stream)
    fig_dir = Path(figures) if figures else None
    if fig_dir:
        fig_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    preds = []
    sink = None
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        sink = open(out, "w")
    try:
        for path in files:
            analysis = _analyse(predictor, path, timeline_args)
            preds.append(analysis.prediction)
            if sink:
                row = asdict(analysis.prediction)
                if row["timeline"] is None:
                    del row["timeline"]
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            if fig_dir and analysis.prediction.timeline and analysis.prediction.error is None:
                save_timeline_figures(predictor, path, analysis.prediction, _figure_path(fig_dir, str(path), used))
            elif fig_dir and analysis.spec is not None and predictor.grid is not None:
                fig = predictor.figure(analysis)
                fig.savefig(_figure_path(fig_dir, str(path), used), dpi=100)
    finally:
        if sink:
            sink.close()
    failed = sum(pred.error is not None for pred in preds)
    print(format_table(preds, predictor.class_names), file=stream)
    for pred in preds:
        if pred.timeline:
            print(f"{_short(pred.path, 48)}: {summarise(pred.timeline)}", file=stream)
    print(f"\n{len(preds)} files, {len(preds) - failed} predicted, {failed} failed", file=stream)
    if out:
        print(f"predictions: {out}", file=stream)
    if fig_dir:
        print(f"figures    : {fig_dir}/", file=stream)
    return preds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ser_fcn predict",
        description="emotion posteriors of audio files (any rate / channels), each file whole",
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint of `python -m ser_fcn fit`")
    parser.add_argument("--out", default=None, help="write the predictions here as JSON lines")
    parser.add_argument("--figures", default=None, help="write each file's spectrogram + attention figure into this folder")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, …")
    parser.add_argument("--timeline", action="store_true", help="emotion over time too: a label per speech window, pauses marked")
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW_S,
                        help=f"timeline window, seconds: a speech region up to this long is one window (default {DEFAULT_WINDOW_S:g})")
    parser.add_argument("--hop", type=float, default=DEFAULT_HOP_S,
                        help=f"timeline hop inside a longer region, seconds (default {DEFAULT_HOP_S:g}; starts snap to 0.32 s)")
    parser.add_argument("--exact_windows", action="store_true",
                   help="run each window alone (exact, ~window/hop times slower) instead of one shared encoding")
    parser.add_argument("--same-speaker", action="store_true",
                        help="the files are one speaker's: a model trained with data.speaker_norm standardises them with "
                             "statistics over all of them (default: each file's own)")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    args = parser.parse_args(argv)
    if args.timeline and not 0 < args.hop <= args.window:
        parser.error(f"--hop must be > 0 and <= --window (got --window {args.window:g} --hop {args.hop:g})")
    try:
        timeline_args = dict(window_s=args.window, hop_s=args.hop, exact=args.exact_windows) if args.timeline else None
        preds = run(args.ckpt, args.inputs, args.out, args.figures, args.device, timeline_args=timeline_args,
                    same_speaker=args.same_speaker)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    if not preds:
        sys.exit(f"error: no audio files found in {' '.join(args.inputs)} (extensions: {' '.join(sorted(AUDIO_EXTENSIONS))})")
    if any(parser.error for parser in preds):
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
