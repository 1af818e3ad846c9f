"""The synthetic corpus must look exactly like IEMOCAP_full_release to a reader, and its
emotions must be learnable but overlapping. Parsed here with regexes of our own, not
with the project's reader, so that the two are checked against each other elsewhere."""

from __future__ import annotations

import hashlib
import re
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ser_fcn.corpora import demo_corpus
from ser_fcn.corpora.demo_corpus import generate_demo_corpus

SUMMARY = re.compile(
    r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(Ses0([1-5])[FM]_\S+_([FM])\d{3})\t([a-z]{3})\t"
    r"\[([1-5]\.\d{4}), ([1-5]\.\d{4}), ([1-5]\.\d{4})\]$"
)
CATEGORICAL = re.compile(r"^C-E\d:\t([A-Z][a-z]+;)+\t\(.*\)$")
ATTRIBUTE = re.compile(r"^A-E\d:\tval \d; act \d; dom  \d;\t\(.*\)$")
UPS = 16  # utterances per speaker of the shared corpus: 160 utterances, about 2 s to make


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_demo_corpus(tmp_path_factory.mktemp("a"), utterances_per_speaker=UPS, seed=0, progress=False)


def label_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("Session*/dialog/EmoEvaluation/*.txt") if not p.name.startswith("._"))


def parse_labels(root: Path) -> dict[str, dict]:
    """utterance id -> fields of its summary line, checking the block structure."""
    out = {}
    for lf in label_files(root):
        blocks = lf.read_text().rstrip("\n").split("\n\n")
        assert blocks[0].startswith("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"), lf
        for block in blocks[1:]:
            first, *rest = block.split("\n")
            m = SUMMARY.match(first)
            assert m, (lf, first)
            assert any(CATEGORICAL.match(r) for r in rest) and any(ATTRIBUTE.match(r) for r in rest), block
            assert all(CATEGORICAL.match(r) or ATTRIBUTE.match(r) for r in rest), block
            utt = m.group(3)
            assert utt not in out, f"duplicate summary line {utt}"
            out[utt] = {"start": float(m.group(1)), "end": float(m.group(2)), "label": m.group(6),
                        "session": int(m.group(4)), "file": lf}
    return out


def wav_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("Session*/sentences/wav/*/*.wav") if not p.name.startswith("._"))


def read_wav(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getcomptype()) == (1, 2, "NONE")
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0, w.getframerate()


def test_layout_and_label_files(corpus):
    root = corpus.root
    assert root.name == "IEMOCAP_full_release"
    assert sorted(p.name for p in root.glob("Session*")) == [f"Session{i}" for i in range(1, 6)]
    labels = parse_labels(root)
    wavs = wav_files(root)
    # every summary line has its wav under sentences/wav/<dialog>/ and vice versa
    assert len(labels) == len(wavs) == len(corpus.utterances) == 10 * UPS
    for w in wavs:
        utt = w.stem
        assert w.parent.name == utt.rsplit("_", 1)[0]
        assert w.parents[3].name == f"Session{labels[utt]['session']}"
        assert labels[utt]["file"].stem == w.parent.name  # the dialog's own label file
    assert {w.stem for w in wavs} == set(labels) == {u["utterance_id"] for u in corpus.utterances}
    for u in corpus.utterances:
        assert labels[u["utterance_id"]]["label"] == u["label"]
        assert Path(u["path"]).is_file() and Path(u["path"]).stem == u["utterance_id"]
    # the junk a reader must skip is there
    emo = list(root.glob("Session*/dialog/EmoEvaluation"))
    assert len(emo) == 5
    for e in emo:
        assert list(e.glob("Categorical/*_e1_cat.txt")) and list(e.glob("Attribute/*"))
    junk = list(root.glob("Session*/sentences/wav/*/._*.wav")) + list(root.glob("Session*/dialog/EmoEvaluation/._*.txt"))
    assert any(p.suffix == ".wav" for p in junk) and any(p.suffix == ".txt" for p in junk)
    for p in junk:
        data = p.read_bytes()
        assert len(data) < 100 and not data.startswith(b"RIFF") and b"\x00" in data
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert (p.parent / p.name[2:]).exists()  # next to a real file, as macOS leaves them
    assert "synthetic" in (root / "DEMO_CORPUS.txt").read_text().lower()


def test_speakers_dialogs_and_codes(corpus):
    utts = corpus.utterances
    assert {u["speaker"] for u in utts} == {f"{s}{g}" for s in range(1, 6) for g in "FM"}
    assert Counter(u["speaker"] for u in utts) == {s: UPS for s in {u["speaker"] for u in utts}}
    dialogs: dict[str, set] = {}
    for u in utts:
        utt = u["utterance_id"]
        dialog, last = utt.rsplit("_", 1)
        assert u["speaker"] == f"{utt[3:5].lstrip('0')}{last[0]}"  # last segment, not the 6th char
        assert u["session"] == int(utt[3:5]) and u["dialog"] == dialog
        assert u["improvised"] == ("impro" in dialog)
        if not u["improvised"]:
            assert re.fullmatch(r"Ses0\d[FM]_script0\d_\d[a-z]?_[FM]\d{3}", utt)
        dialogs.setdefault(dialog, set()).add(last[0])
    assert {"Ses03M_impro05a", "Ses03M_impro05b", "Ses05M_script01_1b"} <= set(dialogs)
    assert any(d[5] == "F" for d in dialogs) and any(d[5] == "M" for d in dialogs)
    assert all(v == {"F", "M"} for v in dialogs.values()), "both actors speak in every dialog"
    # the perspective letter does not give the speaker: both appear under either perspective
    pairs = {(u["dialog"][5], u["speaker"][-1]) for u in utts}
    assert pairs == {("F", "F"), ("F", "M"), ("M", "F"), ("M", "M")}
    for improvised in (True, False):
        codes = Counter(u["label"] for u in utts if u["improvised"] == improvised)
        assert {"neu", "hap", "sad", "ang", "exc", "fru", "xxx"} <= set(codes), codes
    impro = Counter(u["label"] for u in utts if u["improvised"])
    assert 0.6 < sum(impro[c] for c in ("neu", "hap", "sad", "ang")) / sum(impro.values()) < 0.9


def test_counts(corpus):
    c_imp, c_all, c_merged = corpus.counts(), corpus.counts(improvised_only=False), corpus.counts(merge_exc=True)
    assert sum(c_all.values()) == len(corpus.utterances)
    assert sum(c_imp.values()) == sum(u["improvised"] for u in corpus.utterances) < len(corpus.utterances)
    assert c_imp[("1F", "neu")] == sum(u["speaker"] == "1F" and u["label"] == "neu" and u["improvised"] for u in corpus.utterances)
    assert all(lab != "exc" for _, lab in c_merged)
    n_hap = sum(v for (s, lab), v in c_imp.items() if lab in ("hap", "exc"))
    assert sum(v for (s, lab), v in c_merged.items() if lab == "hap") == n_hap


def test_wav_headers_durations_and_times(corpus):
    labels = parse_labels(corpus.root)
    durs = []
    for u in corpus.utterances:
        with wave.open(u["path"]) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            d = w.getnframes() / 16000
        lab = labels[u["utterance_id"]]
        assert abs((lab["end"] - lab["start"]) - d) < 0.010  # within one 10 ms frame
        assert abs(u["duration_s"] - d) < 1e-9
        durs.append(d)
    durs = np.array(durs)
    assert durs.min() >= 1.0 and durs.max() <= 20.0
    assert 2.0 < np.median(durs) < 4.0 and durs.max() > 6.0 and durs.min() < 1.5
    # utterances of a dialog follow each other in time, as in a conversation
    for lf in label_files(corpus.root):
        spans = [(v["start"], v["end"]) for v in labels.values() if v["file"] == lf]
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_per_seed(tmp_path):
    def make(name, seed):
        return generate_demo_corpus(tmp_path / name, utterances_per_speaker=6, seed=seed, progress=False)

    a, again, other = tree_digest(make("a", 0).root), tree_digest(make("b", 0).root), tree_digest(make("c", 1).root)
    assert again == a
    common = [k for k in set(a) & set(other) if k.endswith(".wav") and "/._" not in k]
    assert len(common) > 0 and all(a[k] != other[k] for k in common)


def test_cache_reuse_and_regeneration(tmp_path):
    out = tmp_path / "demo"
    first = generate_demo_corpus(out, utterances_per_speaker=4, seed=0, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in first.root.rglob("*")}
    second = generate_demo_corpus(out, utterances_per_speaker=4, seed=0, progress=False)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in first.root.rglob("*")} == mtimes, "a cached corpus was rewritten"

    def consistent(s):
        assert {w.stem for w in wav_files(s.root)} == set(parse_labels(s.root)) == {u["utterance_id"] for u in s.utterances}
        assert [p.name for p in out.iterdir()] == ["IEMOCAP_full_release"], "leftover temporary folders"

    # different parameters: replaced cleanly, no stale files of the old corpus
    third = generate_demo_corpus(out, utterances_per_speaker=5, seed=1, progress=False)
    consistent(third)
    assert len(third.utterances) == 50
    assert '"seed": 1' in (third.root / "demo_corpus.json").read_text()
    # incomplete corpora are regenerated: a missing wav, or no marker (interrupted run)
    victim = Path(third.utterances[7]["path"])
    victim.unlink()
    consistent(generate_demo_corpus(out, utterances_per_speaker=5, seed=1, progress=False))
    assert victim.is_file()
    (third.root / "demo_corpus.json").unlink()
    (out / ".demo_corpus-stale").mkdir()
    consistent(generate_demo_corpus(out, utterances_per_speaker=5, seed=1, progress=False))


def test_never_overwrites_a_real_corpus(tmp_path):
    real = tmp_path / "IEMOCAP_full_release" / "Session1" / "dialog" / "EmoEvaluation"
    real.mkdir(parents=True)
    (real / "Ses01F_impro01.txt").write_text("% real\n")
    with pytest.raises(FileExistsError):
        generate_demo_corpus(tmp_path, utterances_per_speaker=4, progress=False)
    assert (real / "Ses01F_impro01.txt").read_text() == "% real\n"
    with pytest.raises(ValueError):
        generate_demo_corpus(tmp_path / "x", scripted_fraction=1.0, progress=False)


def test_default_size():
    """Defaults: a 5-fold demo of ~300-450 improvised 4-class utterances, < 40 min of audio."""
    params = {"seed": 0, "sample_rate": 16000}
    utts = demo_corpus._plan(params, n_impro=42, n_script=18)  # 60 per speaker, 30% scripted
    impro4 = [u for u in utts if u["improvised"] and u["label"] in ("neu", "hap", "sad", "ang")]
    assert len(utts) == 600 and 300 <= len(impro4) <= 450
    assert 25 * 60 < sum(u["duration_s"] for u in utts) < 40 * 60


def acoustic_stats(path) -> tuple[float, float, float]:
    """Loudness (90th percentile of 25 ms frame energy, dB), alpha ratio (energy above 1 kHz
    over below, dB) and f0 (Hz, autocorrelation) of the loudest frames."""
    x, sr = read_wav(path)
    fr = x[: len(x) // 400 * 400].reshape(-1, 400)
    e = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-12)
    top = fr[np.argsort(e)[-20:]]
    p = np.abs(np.fft.rfft(top * np.hanning(400), axis=1)) ** 2
    f = np.fft.rfftfreq(400, 1 / sr)
    alpha = 10 * np.log10(p[:, (f >= 1000) & (f < 5000)].sum() / p[:, f < 1000].sum())
    ac = np.fft.irfft(np.abs(np.fft.rfft(top, 1024, axis=1)) ** 2, axis=1)[:, 27:267]  # 60..590 Hz
    return float(np.percentile(e, 90)), float(alpha), float(np.median(sr / (27 + np.argmax(ac, axis=1))))


def test_emotions_differ_as_designed_but_overlap(corpus):
    st = {u["utterance_id"]: acoustic_stats(u["path"]) for u in corpus.utterances}
    spk_f0 = {s: np.median([st[u["utterance_id"]][2] for u in corpus.utterances if u["speaker"] == s])
              for s in {u["speaker"] for u in corpus.utterances}}
    for s in range(1, 6):  # female voices are higher
        assert spk_f0[f"{s}F"] > 1.3 * spk_f0[f"{s}M"]
    # pitch relative to the speaker (semitones), so that the F/M mix of a class does not matter
    by = {c: np.array([(*st[u["utterance_id"]][:2], 12 * np.log2(st[u["utterance_id"]][2] / spk_f0[u["speaker"]]))
                       for u in corpus.utterances if u["label"] == c]) for c in ("neu", "hap", "sad", "ang")}
    assert all(len(v) >= 10 for v in by.values())
    mean = {c: v.mean(axis=0) for c, v in by.items()}
    energy, alpha, pitch = 0, 1, 2
    assert mean["ang"][energy] > mean["neu"][energy] + 2 > mean["sad"][energy] + 2
    assert mean["ang"][energy] > mean["sad"][energy] + 5 and mean["hap"][energy] > mean["sad"][energy]
    assert mean["ang"][alpha] > mean["sad"][alpha] + 2 and mean["ang"][alpha] > mean["neu"][alpha]
    assert mean["ang"][pitch] > mean["sad"][pitch] + 2 and mean["hap"][pitch] > mean["neu"][pitch]

    def frac_above(a, b, k):  # share of (a, b) pairs where a's stat exceeds b's
        return np.mean(by[a][:, k][:, None] > by[b][:, k][None, :])

    assert frac_above("sad", "ang", energy) > 0.01, "every sad utterance is quieter than every angry one"
    assert frac_above("neu", "hap", energy) > 0.2 and frac_above("sad", "ang", alpha) > 0.02
    # a nearest-class-mean rule on these stats is well above chance (0.25) yet far from perfect
    X = np.concatenate(list(by.values()))
    y = np.concatenate([[i] * len(v) for i, v in enumerate(by.values())])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    centroids = np.stack([X[y == i].mean(axis=0) for i in range(4)])
    acc = np.mean(np.argmin(((X[:, None] - centroids[None]) ** 2).sum(-1), axis=1) == y)
    assert 0.35 < acc < 0.8, acc
