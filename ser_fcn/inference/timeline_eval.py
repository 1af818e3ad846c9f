"""`python -m ser_fcn evaluate-timeline --timeline t.jsonl --reference call.csv|call.rttm [--file NAME] [--out r.json]`

Scores a `predict --timeline` output against reference segments, as the field scores
emotion diarization:

* EDER, the emotion diarization error rate of Wang et al. 2023 ("Speech Emotion Diarization:
  Which Emotion Appears When?", arXiv 2306.12991; SpeechBrain's `speechbrain/utils/EDER.py`).
  The timeline is first made a sequence of labelled intervals as SpeechBrain does: touching
  or overlapping windows of one label are merged, and where two windows of different labels
  overlap the overlap is split at its middle. Then, over the recording:
  wrong label (confusion): reference speech of one emotion given another;
  missed: reference speech given no emotion (a pause, or no window);
  false alarm: a reference pause given an emotion;
  EDER = (wrong label + missed + false alarm) / reference speech time, each component over the
  same denominator, so they sum to EDER. SpeechBrain's reference covers the whole utterance
  (neutral outside the emotion event) and divides by the utterance's duration; here the
  reference time outside any segment is a pause, not an emotion, so the denominator is the
  speech time, as in the diarization error rate (a false alarm can take EDER above 1).
* per-utterance majority agreement: for each reference segment, the majority label of the
  timeline windows whose centre lies inside it (ties: the higher summed probability), compared
  with the reference label; a segment with no window centred inside counts as wrong.

Reference files: CSV with a header naming `start`, `end` and `label` (seconds; more columns
allowed), or RTTM (`SPEAKER <file> <chan> <onset> <duration> <ortho> <stype> <label> <conf>
<slat>`, the label in the speaker-name field). A malformed line is an error naming file:line.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from ..utils import atomic
from .call import Segment
from .timeline import PAUSE


class ReferenceError(ValueError):
    """A reference or timeline file that cannot be used; the message names file:line and the problem."""


# --- reading --------------------------------------------------------------------------------


def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReferenceError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ReferenceError(f"{where}: {what} {text!r} must be a finite number >= 0")
    return value


def _check(segs: list[tuple[Segment, str]]) -> list[Segment]:
    for seg, where in segs:
        if seg.end <= seg.start:
            raise ReferenceError(f"{where}: end {seg.end:g} is not after start {seg.start:g}")
        if not seg.label:
            raise ReferenceError(f"{where}: empty label")
    ordered = sorted(segs, key=lambda p: p[0].start)
    for (a, wa), (b, wb) in zip(ordered, ordered[1:]):
        if b.start < a.end - 1e-9:
            raise ReferenceError(f"{wb}: segment {b.start:g}-{b.end:g} s overlaps {a.start:g}-{a.end:g} s ({wa}); "
                                 "a reference gives one label at a time")
    return [s for s, _ in ordered]


def read_csv_segments(path: str | Path) -> list[Segment]:
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ReferenceError(f"{path}:1: empty file (expected a header with start,end,label)")
        cols = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = [c for c in ("start", "end", "label") if c not in cols]
        if missing:
            raise ReferenceError(f"{path}:1: header {header} lacks column(s) {', '.join(missing)}")
        name_col = cols.get("utterance_id")
        segs = []
        for line_no, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{line_no}"
            if len(row) < len(header):
                raise ReferenceError(f"{where}: {len(row)} fields, the header has {len(header)}")
            seg = Segment(_number(row[cols["start"]], where, "start"), _number(row[cols["end"]], where, "end"),
                          row[cols["label"]].strip(), row[name_col].strip() if name_col is not None else "")
            segs.append((seg, where))
    return _check(segs)


def read_rttm_segments(path: str | Path) -> list[Segment]:
    path = Path(path)
    segs = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].startswith(";") or fields[0].startswith("#"):
                continue
            where = f"{path}:{line_no}"
            if len(fields) < 8:
                raise ReferenceError(f"{where}: {len(fields)} fields; RTTM has 10 "
                                     "(SPEAKER file chan onset duration ortho stype label conf slat)")
            if fields[0] != "SPEAKER":
                continue  # other RTTM types (SPKR-INFO, LEXEME ...) hold no segment
            onset, dur = _number(fields[3], where, "onset"), _number(fields[4], where, "duration")
            segs.append((Segment(onset, onset + dur, fields[7], fields[1]), where))
    return _check(segs)


def read_reference(path: str | Path) -> list[Segment]:
    """Reference segments of a CSV or an RTTM file (by its extension: .rttm is RTTM)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: reference file not found")
    return read_rttm_segments(path) if path.suffix.lower() == ".rttm" else read_csv_segments(path)


def read_timeline(path: str | Path, file: str | None = None) -> tuple[list[dict], str, float | None]:
    """(timeline entries, the audio path, its duration) of one JSON line of `predict --timeline --out`;
    `file` picks a line by the audio's name or path when there are several."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: timeline file not found")
    records = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReferenceError(f"{path}:{line_no}: not JSON ({err.msg})") from None
            if not isinstance(rec, dict) or "path" not in rec:
                raise ReferenceError(f"{path}:{line_no}: not a line of `predict --out` (no \"path\")")
            records.append((line_no, rec))
    if file:
        records = [(n, r) for n, r in records if r["path"] == file or Path(r["path"]).name == file
                   or Path(r["path"]).stem == file]
    if len(records) != 1:
        names = ", ".join(Path(r["path"]).name for _, r in records) or "none"
        raise ReferenceError(f"{path}: {len(records)} lines match{f' {file!r}' if file else ''} ({names}); "
                             "name one audio file with --file")
    line_no, rec = records[0]
    if rec.get("error"):
        raise ReferenceError(f"{path}:{line_no}: {rec['path']} got no answer: {rec['error']}")
    if not isinstance(rec.get("timeline"), list):
        raise ReferenceError(f"{path}:{line_no}: no \"timeline\" (run predict with --timeline)")
    for i, seg in enumerate(rec["timeline"]):
        if not {"start", "end", "label"} <= set(seg) or not seg["end"] >= seg["start"]:
            raise ReferenceError(f"{path}:{line_no}: timeline entry {i} {seg!r} needs start <= end and a label")
    return rec["timeline"], rec["path"], rec.get("duration_s")


# --- scoring --------------------------------------------------------------------------------


def predicted_intervals(timeline: list[dict]) -> list[tuple[float, float, str]]:
    """Non-overlapping (start, end, label) of the emotion windows (pauses dropped), SpeechBrain's
    way: touching or overlapping windows of one label merged, the overlap of two different
    labels split at its middle."""
    merged: list[list] = []
    for seg in sorted((s for s in timeline if s["label"] != PAUSE), key=lambda s: (s["start"], s["end"])):
        start, end, label = float(seg["start"]), float(seg["end"]), seg["label"]
        if merged and merged[-1][2] == label and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, label])
    for a, b in zip(merged, merged[1:]):
        if b[0] < a[1]:  # different labels overlap: half each
            middle = (b[0] + a[1]) / 2
            a[1], b[0] = middle, middle
    return [(a, max(a, b), lab) for a, b, lab in merged]


def eder(timeline: list[dict], reference: list[Segment]) -> dict:
    """{eder, wrong_label, missed, false_alarm (shares of the reference speech time), the same in
    seconds, speech_s}: see the module doc."""
    pred = predicted_intervals(timeline)
    speech = sum(s.end - s.start for s in reference)
    if speech <= 0:
        raise ValueError("the reference holds no speech: EDER is undefined")
    correct = wrong = 0.0
    for s in reference:
        for a, b, label in pred:
            overlap = min(b, s.end) - max(a, s.start)
            if overlap > 0:
                if label == s.label:
                    correct += overlap
                else:
                    wrong += overlap
    covered = sum(b - a for a, b, _ in pred)
    missed = speech - correct - wrong
    false_alarm = covered - correct - wrong  # predicted emotion time outside every reference segment
    seconds = {"wrong_label_s": wrong, "missed_s": max(0.0, missed), "false_alarm_s": max(0.0, false_alarm)}
    shares = {k[:-2]: v / speech for k, v in seconds.items()}
    return {"eder": sum(shares.values()), **shares, **{k: round(v, 4) for k, v in seconds.items()},
            "speech_s": round(speech, 4)}


def majority_agreement(timeline: list[dict], reference: list[Segment]) -> dict:
    """{agreement, n, correct, no_window, per_segment [{start, end, label, predicted, windows}]}."""
    windows = [s for s in timeline if s["label"] != PAUSE]
    rows, correct, empty = [], 0, 0
    for ref in reference:
        inside = [w for w in windows if ref.start <= (w["start"] + w["end"]) / 2 < ref.end]
        votes: dict[str, list] = defaultdict(lambda: [0, 0.0])
        for w in inside:
            votes[w["label"]][0] += 1
            votes[w["label"]][1] += float((w.get("probabilities") or {}).get(w["label"], 0.0))
        predicted = max(votes, key=lambda k: tuple(votes[k])) if votes else None
        correct += predicted == ref.label
        empty += predicted is None
        rows.append({"start": ref.start, "end": ref.end, "label": ref.label, "name": ref.name,
                     "predicted": predicted, "windows": len(inside)})
    n = len(reference)
    return {"agreement": correct / n if n else float("nan"), "n": n, "correct": correct, "no_window": empty,
            "per_segment": rows}


def evaluate_timeline(timeline: list[dict], reference: list[Segment]) -> dict:
    return {"eder": eder(timeline, reference), "majority": majority_agreement(timeline, reference)}


def format_report(rep: dict) -> str:
    e, m = rep["eder"], rep["majority"]
    return "\n".join([
        f"EDER {100 * e['eder']:.1f}% of {e['speech_s']:.1f} s of reference speech: wrong label {100 * e['wrong_label']:.1f}%, "
        f"missed {100 * e['missed']:.1f}%, false alarm {100 * e['false_alarm']:.1f}%",
        f"per-utterance majority agreement {m['correct']}/{m['n']} = {100 * m['agreement']:.1f}%"
        + (f" ({m['no_window']} segment(s) with no window centred inside)" if m["no_window"] else ""),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_fcn evaluate-timeline",
                                     description="score a predict --timeline output against reference segments (EDER)")
    parser.add_argument("--timeline", required=True, help="JSON lines of `predict --timeline --out`")
    parser.add_argument("--reference", required=True, help="reference segments: CSV (start,end,label) or .rttm")
    parser.add_argument("--file", help="which audio file of the timeline (its name), when it holds several")
    parser.add_argument("--out", help="write the report here as JSON")
    args = parser.parse_args(argv)
    try:
        timeline, audio, _ = read_timeline(args.timeline, args.file)
        reference = read_reference(args.reference)
        report = {"timeline": str(args.timeline), "audio": audio, "reference": str(args.reference),
                  **evaluate_timeline(timeline, reference)}
    except (OSError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(format_report(report))
    if args.out:
        atomic.write_text(args.out, json.dumps(report, indent=1) + "\n")
        print(f"report: {args.out}")


if __name__ == "__main__":  # pragma: no cover
    main()
