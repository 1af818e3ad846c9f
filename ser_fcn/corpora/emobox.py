"""EmoBox fold files -> manifest rows and each fold's train / validation / test membership.

Schema, as read in EmoBox's repository (github.com/emo-box/EmoBox: `data/<corpus>/`,
`EmoBox/EmoDataset.py` `prepare_data_from_jsonl`, README "Prepare datasets"):

- `<dir>/label_map.json`: raw emotion code -> class name, e.g. IEMOCAP's
  `{"neu": "Neutral", "hap": "Happy", "ang": "Angry", "sad": "Sad", "exc": "Happy"}`.
- `<dir>/fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl` (`<corpus>` is the folder's name),
  optionally `<corpus>_valid_fold_<k>.jsonl` (MELD has one). One JSON object a line:
  `key` ("iemocap-Ses01F_impro04_F000"), `dataset`, `wav` (a path relative to the folder
  the audio was downloaded under, e.g. "downloads/iemocap/Session1/sentences/wav/..."),
  `type`, `sample_rate`, `num_frame`, `task`, `length` (seconds), `emo` (a raw code),
  `channel` (absent in some corpora, e.g. emodb). We need `key`, `wav` and `emo`.

Validation: EmoBox has no validation split except where a valid file exists. Ours is
carved from the training fold (VAL_FRACTION, EmoBox's own 80/20 ratio): where speakers are
known (IEMOCAP keys, via `iemocap.parse_utterance_id`), whole speakers, chosen in a seeded
order, whose share of training is closest to VAL_FRACTION; else a seeded random
VAL_FRACTION of the utterances. The rule used is in `FoldSplit.val_speaker` and results.json.

A malformed line or an unknown emotion code is an error naming file:line; a wav that is
missing or unusable is skipped and counted in the reader's summary (as for IEMOCAP).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from tqdm.auto import tqdm

from ..utils.errors import UserError
from .audio import AudioError, check_audio_file
from .folds import FoldSplit
from .iemocap import parse_utterance_id
from .manifest import ReadSummary, Utterance

LABEL_MAP = "label_map.json"
VAL_FRACTION = 0.2  # EmoBox's split_ratio [80, 20] (EmoDataset.prepare_data_from_jsonl)
UNKNOWN_SPEAKER = "unknown"
# IEMOCAP's label map as EmoBox publishes it (data/iemocap/label_map.json): exc counts as Happy.
IEMOCAP_LABEL_MAP = {"neu": "Neutral", "hap": "Happy", "ang": "Angry", "sad": "Sad", "exc": "Happy"}


class EmoBoxError(UserError, ValueError):
    """An EmoBox folder or fold file that cannot be used; names the file (and line)."""


def corpus_name(emobox_dir: str | Path) -> str:
    return Path(emobox_dir).resolve().name


def fold_numbers(emobox_dir: str | Path) -> list[int]:
    """The k of every `fold_<k>` folder, sorted; an error if there is none."""
    folder = Path(emobox_dir)
    if not (folder / LABEL_MAP).is_file():
        raise EmoBoxError(f"{folder}: no {LABEL_MAP}; data.emobox is one corpus's folder of EmoBox's data/ (e.g. data/iemocap)")
    ks = sorted(int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := re.fullmatch(r"fold_(\d+)", p.name)))
    if not ks:
        raise EmoBoxError(f"{folder}: no fold_<k> folders")
    return ks


def read_label_map(emobox_dir: str | Path) -> dict[str, str]:
    path = Path(emobox_dir) / LABEL_MAP
    try:
        mapping = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EmoBoxError(f"{path}: not a readable JSON label map ({e})") from None
    if not isinstance(mapping, dict) or not mapping or not all(isinstance(v, str) for v in mapping.values()):
        raise EmoBoxError(f"{path}: expected an object mapping emotion codes to class names")
    return mapping


def label_map_classes(emobox_dir: str | Path) -> list[str]:
    """The class names of the label map, in the order they first appear."""
    return list(dict.fromkeys(read_label_map(emobox_dir).values()))


def fold_file(emobox_dir: str | Path, fold: int, part: str) -> Path:
    folder = Path(emobox_dir)
    return folder / f"fold_{fold}" / f"{corpus_name(folder)}_{part}_fold_{fold}.jsonl"


def read_records(path: Path, label_map: dict[str, str]) -> list[dict]:
    """The records of one jsonl fold file, checked; errors name file:line."""
    out, seen = [], {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise EmoBoxError(f"{path}:{no}: malformed JSON line ({e})") from None
        missing = [k for k in ("key", "wav", "emo") if not isinstance(record, dict) or not record.get(k)]
        if missing:
            raise EmoBoxError(f"{path}:{no}: missing field(s) {', '.join(missing)}")
        if record["emo"] not in label_map:
            raise EmoBoxError(f"{path}:{no}: unknown emotion {record['emo']!r} (label_map.json has {', '.join(label_map)})")
        if record["key"] in seen:
            raise EmoBoxError(f"{path}:{no}: key {record['key']!r} already on line {seen[record['key']]}")
        seen[record["key"]] = no
        out.append(record)
    return out


def speaker_of(key: str) -> tuple[str, int, bool]:
    """(speaker, session, improvised) of an EmoBox key; speaker UNKNOWN_SPEAKER where not derivable."""
    try:
        session, speaker, _, improvised = parse_utterance_id(key.split("-", 1)[1] if "-" in key else key)
        return speaker, session, improvised
    except ValueError:
        return UNKNOWN_SPEAKER, 0, False


def fold_keys(emobox_dir: str | Path, fold: int) -> dict[str, list[str]]:
    """Keys of `fold`'s train / test (and valid, if EmoBox has one) files."""
    label_map = read_label_map(emobox_dir)
    out = {}
    for part in ("train", "valid", "test"):
        path = fold_file(emobox_dir, fold, part)
        if path.is_file():
            out[part] = [r["key"] for r in read_records(path, label_map)]
        elif part != "valid":
            raise EmoBoxError(f"{path}: fold file not found (folds here: {fold_numbers(emobox_dir)})")
    return out


def read_emobox_fold(emobox_dir: str | Path, fold: int, audio_root: str | Path, classes: list[str] | None = None,
                     progress: bool = True) -> tuple[list[Utterance], ReadSummary]:
    """Manifest rows of every utterance in `fold`'s files, labelled with label-map class names."""
    label_map = read_label_map(emobox_dir)
    classes = classes or label_map_classes(emobox_dir)
    unknown = [c for c in classes if c not in label_map.values()]
    if unknown:
        raise EmoBoxError(f"{Path(emobox_dir) / LABEL_MAP}: data.classes {unknown} are not among its class names "
                          f"{label_map_classes(emobox_dir)}")
    keys = fold_keys(emobox_dir, fold)  # checks every line first
    both = set(keys["train"]) & set(keys["test"])
    if both:
        raise EmoBoxError(f"{fold_file(emobox_dir, fold, 'test')}: {len(both)} key(s) also in the train file, e.g. {sorted(both)[0]}")
    summary, rows, root = ReadSummary(), [], Path(audio_root).absolute()  # see iemocap.find_corpus_root
    parts = [p for p in ("train", "valid", "test") if p in keys]
    records = []
    for part in parts:
        summary.label_files += 1
        records += read_records(fold_file(emobox_dir, fold, part), label_map)
    for r in tqdm(records, desc=f"EmoBox fold {fold} wav files", unit="file", disable=not progress):
        summary.summary_lines += 1
        summary.codes[r["emo"]] += 1
        label = label_map[r["emo"]]
        if label not in classes:
            summary.excluded_class[label] += 1
            continue
        wav = Path(r["wav"]) if Path(r["wav"]).is_absolute() else root / r["wav"]
        try:
            info = check_audio_file(wav)
        except AudioError as e:
            summary.bad_audio.append(e)
            continue
        speaker, session, improvised = speaker_of(r["key"])
        rows.append(Utterance(r["key"], str(wav), label, speaker, session, improvised, info.frames / info.samplerate))
    summary.kept = len(rows)
    return rows, summary


def emobox_split(rows: list[Utterance], keys: dict[str, list[str]], fold: int, seed: int = 0) -> FoldSplit:
    """Indices of `rows` in train / validation / test: EmoBox's files, validation carved from train."""
    where = {r.utterance_id: i for i, r in enumerate(rows)}
    pick = lambda part: [where[k] for k in keys.get(part, []) if k in where]  # noqa: E731 - skipped rows drop out
    train, test = pick("train"), pick("test")
    if "valid" in keys:
        val, rule = pick("valid"), "EmoBox's valid file"
    else:
        train, val, rule = carve_validation(rows, train, seed)
    test_speakers = sorted({rows[i].speaker for i in test})
    sessions = {rows[i].session for i in test}
    return FoldSplit(fold, sessions.pop() if len(sessions) == 1 else 0, rule, ",".join(test_speakers), train, val, test)


def carve_validation(rows: list[Utterance], train: list[int], seed: int = 0,
                     fraction: float = VAL_FRACTION) -> tuple[list[int], list[int], str]:
    """(train, validation, rule): whole speakers where known, else random utterances."""
    speakers = sorted({rows[i].speaker for i in train} - {UNKNOWN_SPEAKER})
    rng = random.Random(seed)
    if len(speakers) >= 2:
        rng.shuffle(speakers)
        size = {s: sum(rows[i].speaker == s for i in train) for s in speakers}
        target, best, total = fraction * len(train), (None, 0), 0
        for n, s in enumerate(speakers[:-1], start=1):  # at least one speaker stays in training
            total += size[s]
            if best[0] is None or abs(total - target) < abs(best[1] - target):
                best = (n, total)
        chosen = set(speakers[: best[0]])
        val = [i for i in train if rows[i].speaker in chosen]
        rule = (f"{','.join(sorted(chosen))} ({100 * len(val) / len(train):.0f}% of the training fold; "
                f"the whole-speaker share closest to {100 * fraction:.0f}%, seed {seed})")
        return [i for i in train if rows[i].speaker not in chosen], val, rule
    shuffled = train[:]
    rng.shuffle(shuffled)
    chosen = set(shuffled[: max(1, round(fraction * len(train)))])
    rule = f"random {100 * fraction:.0f}% of the training fold's utterances (speakers unknown; seed {seed})"
    return [i for i in train if i not in chosen], [i for i in train if i in chosen], rule


def write_emobox(rows: list[Utterance], codes: dict[str, str], out_dir: str | Path, audio_root: str | Path,
                 dataset: str, label_map: dict[str, str]) -> Path:
    """Write `rows` as an EmoBox corpus folder `<out_dir>/<dataset>`: one fold per session
    (test: that session; train: the others). `codes[utterance_id]` is the raw emotion code."""
    folder = Path(out_dir) / dataset
    (folder / LABEL_MAP).parent.mkdir(parents=True, exist_ok=True)
    (folder / LABEL_MAP).write_text(json.dumps(label_map, indent=4))
    root = Path(audio_root).resolve()
    for k, session in enumerate(sorted({r.session for r in rows}), start=1):
        (folder / f"fold_{k}").mkdir(exist_ok=True)
        for part, keep in (("train", lambda r: r.session != session), ("test", lambda r: r.session == session)):
            with open(fold_file(folder, k, part), "w") as f:
                for r in filter(keep, rows):
                    f.write(json.dumps({
                        "key": f"{dataset}-{r.utterance_id}", "dataset": dataset,
                        "wav": str(Path(r.path).resolve().relative_to(root)), "type": "raw", "sample_rate": 16000,
                        "num_frame": round(r.duration_s * 16000), "task": "category", "length": r.duration_s,
                        "emo": codes[r.utterance_id], "channel": 1}) + "\n")
    return folder


def export_iemocap_tree(iemocap_root: str | Path, out_dir: str | Path, dataset: str = "demo",
                        progress: bool = True) -> tuple[Path, Path]:
    """An IEMOCAP-layout tree (the demo corpus) as an EmoBox folder with IEMOCAP's label map:
    all sessions, improvised and scripted, the label map's codes. (folder, audio root)."""
    from .iemocap import find_corpus_root, read_iemocap

    root = find_corpus_root(iemocap_root)
    rows, _ = read_iemocap(root, tuple(IEMOCAP_LABEL_MAP), include_scripted=True, progress=progress)
    codes = {r.utterance_id: r.label for r in rows}  # merge_exc off: the label is the raw code
    return write_emobox(rows, codes, out_dir, root.parent, dataset, IEMOCAP_LABEL_MAP), root.parent
