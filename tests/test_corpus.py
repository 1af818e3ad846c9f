"""IEMOCAP reader, manifest schema and speaker-independent folds."""

from collections import Counter
from pathlib import Path

import pytest

from ser_fcn.corpora.folds import LeakageError, make_fold, thin_training
from ser_fcn.corpora.iemocap import LabelFileError, parse_label_file, parse_utterance_id, read_iemocap
from ser_fcn.corpora.manifest import COLUMNS, ManifestError, Utterance, read_manifest, write_manifest

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def block(utt, code, start=1.0, end=3.5):
    return (
        f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]\n"
        "C-E2:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n"
    )


@pytest.mark.parametrize(
    "utt, expected",
    [
        ("Ses01F_impro01_M003", (1, "1M", "Ses01F_impro01", True)),
        ("Ses01M_impro01_F000", (1, "1F", "Ses01M_impro01", True)),
        ("Ses03M_impro05a_F012", (3, "3F", "Ses03M_impro05a", True)),
        ("Ses03M_impro08b_M001", (3, "3M", "Ses03M_impro08b", True)),
        ("Ses05M_script01_1b_F012", (5, "5F", "Ses05M_script01_1b", False)),
        ("Ses02F_script02_2_M044", (2, "2M", "Ses02F_script02_2", False)),
    ],
)
def test_speaker_is_the_last_segment_not_a_fixed_position(utt, expected):
    assert parse_utterance_id(utt) == expected


def test_label_file_keeps_summary_lines_only(tmp_path):
    f = tmp_path / "Ses01F_impro01.txt"
    f.write_text(HEADER + block("Ses01F_impro01_F000", "neu") + block("Ses01F_impro01_M000", "xxx", 4, 6.25))
    lines = parse_label_file(f)
    assert [(x.utterance_id, x.code, x.start_s, x.end_s) for x in lines] == [
        ("Ses01F_impro01_F000", "neu", 1.0, 3.5),
        ("Ses01F_impro01_M000", "xxx", 4.0, 6.25),
    ]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("[1.0 - 2.0]\tSes01F_impro01_F000\tneu\n", "malformed summary line"),
        ("[1.0 - 2.0] Ses01F_impro01_F000 neu [1, 2, 3]\n", "malformed summary line"),
        ("[1.0 - 2.0]\tSes01F_impro01_F000\tjoy\t[1, 2, 3]\n", "unknown emotion code 'joy'"),
        ("[1.0 - 2.0]\tnot_an_id\tneu\t[1, 2, 3]\n", "not an IEMOCAP utterance id"),
        ("[3.0 - 2.0]\tSes01F_impro01_F000\tneu\t[1, 2, 3]\n", "ends"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path, bad, problem):
    f = tmp_path / "Ses01F_impro01.txt"
    f.write_text(HEADER + block("Ses01F_impro01_M000", "ang") + bad)
    with pytest.raises(LabelFileError) as e:
        parse_label_file(f)
    assert f"{f}:" in str(e.value) and problem in str(e.value)


def _manifest_counts(rows):
    return Counter((r.speaker, r.label) for r in rows)


def test_reader_matches_what_the_demo_generator_wrote(demo_corpus):
    rows, summary = read_iemocap(demo_corpus.root, progress=False)
    assert _manifest_counts(rows) == Counter({k: v for k, v in demo_corpus.counts(improvised_only=True).items() if k[1] in ("neu", "hap", "sad", "ang")})
    truth = {u["utterance_id"]: u for u in demo_corpus.utterances}
    for r in rows:
        t = truth[r.utterance_id]
        assert (r.label, r.speaker, r.session, r.improvised) == (t["label"], t["speaker"], t["session"], True)
        assert abs(r.duration_s - t["duration_s"]) < 0.01
        assert Path(r.path).is_file() and not Path(r.path).name.startswith("._")
    # what was left out is counted, not lost
    assert summary.summary_lines == len(demo_corpus.utterances)
    assert summary.kept + summary.excluded_scripted + sum(summary.excluded_class.values()) == summary.summary_lines
    assert {"exc", "fru", "xxx"} <= set(summary.excluded_class)


def test_reader_options_merge_exc_and_scripted(demo_corpus):
    merged, _ = read_iemocap(demo_corpus.root, merge_exc=True, progress=False)
    plain, _ = read_iemocap(demo_corpus.root, progress=False)
    n_exc = sum(1 for u in demo_corpus.utterances if u["improvised"] and u["label"] == "exc")
    assert n_exc > 0 and len(merged) == len(plain) + n_exc
    assert "exc" not in {r.label for r in merged}
    both, _ = read_iemocap(demo_corpus.root, include_scripted=True, progress=False)
    assert any(not r.improvised for r in both) and len(both) > len(plain)
    four = ["neu", "ang", "fru", "sad"]
    custom, _ = read_iemocap(demo_corpus.root, classes=four, progress=False)
    assert {r.label for r in custom} == set(four)


def test_reader_skips_and_counts_broken_wavs(demo_corpus_copy):
    rows, _ = read_iemocap(demo_corpus_copy, progress=False)
    victims = rows[:3]
    Path(victims[0].path).unlink()
    Path(victims[1].path).write_bytes(b"")
    data = Path(victims[2].path).read_bytes()
    Path(victims[2].path).write_bytes(data[: len(data) // 2])
    rows2, summary = read_iemocap(demo_corpus_copy, progress=False)
    assert len(rows2) == len(rows) - 3
    report = summary.report()
    assert "SKIPPED 3" in report
    for v, problem in zip(victims, ["file not found", "empty file", "truncated"]):
        assert any(e.path == v.path and problem in e.problem for e in summary.bad_audio)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_iemocap(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="EmoEvaluation"):
        read_iemocap(tmp_path)


# --- manifest ----------------------------------------------------------------------

def _rows(n_sessions=5, per_speaker=4):
    rows = []
    for s in range(1, n_sessions + 1):
        for g in "FM":
            for i in range(per_speaker):
                rows.append(Utterance(f"u{s}{g}{i}", f"wav/{s}{g}{i}.wav", ["neu", "hap", "sad", "ang"][i % 4], f"{s}{g}", s, True, 2.0))
    return rows


def test_manifest_round_trip_and_relative_paths(tmp_path):
    rows = _rows()
    path = write_manifest(rows, tmp_path / "m.csv")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    back = read_manifest(path)
    assert [r.utterance_id for r in back] == [r.utterance_id for r in rows]
    assert back[0].path == str(tmp_path / "wav/1F0.wav") and back[0].session == 1 and back[0].improvised is True


def test_manifest_errors_name_the_problem(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("utterance_id,path,label,speaker\nu1,a.wav,neu,1F\n")
    with pytest.raises(ManifestError, match="missing column.*session.*improvised.*duration_s") as e:
        read_manifest(p)
    assert str(p) in str(e.value)
    write_manifest(_rows() + [Utterance("x", "x.wav", "joy", "1F", 1, True, 1.0)], p)
    with pytest.raises(ManifestError, match=r"outside the class list.*joy \(1\)"):
        read_manifest(p, classes=["neu", "hap", "sad", "ang"])
    p.write_text(",".join(COLUMNS) + "\nu1,a.wav,neu,1F,one,1,2.0\n")
    with pytest.raises(ManifestError, match=r"m.csv:2: bad row"):
        read_manifest(p)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.csv")


# --- folds -------------------------------------------------------------------------

@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_folds_are_speaker_independent_and_cover_everything(fold, swap):
    rows = _rows()
    split = make_fold(rows, fold, swap)
    spk = {name: {rows[i].speaker for i in getattr(split, name)} for name in ("train", "val", "test")}
    assert not (spk["train"] & spk["val"]) and not (spk["train"] & spk["test"]) and not (spk["val"] & spk["test"])
    assert sorted(split.train + split.val + split.test) == list(range(len(rows)))
    assert {rows[i].session for i in split.val + split.test} == {fold}
    assert len(spk["val"]) == len(spk["test"]) == 1 and len(spk["train"]) == 8
    other = make_fold(rows, fold, not swap)
    assert (other.val_speaker, other.test_speaker) == (split.test_speaker, split.val_speaker)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_fewer_training_sessions_keep_validation_and_test_and_use_every_session_equally(n, swap):
    rows = _rows()
    used = Counter()
    for fold in range(1, 6):
        full, split = make_fold(rows, fold, swap), make_fold(rows, fold, swap, train_sessions=n)
        assert (split.val, split.test, split.val_speaker, split.test_speaker) == (full.val, full.test, full.val_speaker, full.test_speaker)
        sessions = {rows[i].session for i in split.train}
        assert len(sessions) == n and fold not in sessions and split.train_sessions == tuple(sorted(sessions))
        assert split.train == [i for i in full.train if rows[i].session in sessions]  # whole sessions, both speakers
        assert len({rows[i].speaker for i in split.train}) == 2 * n and f"sessions {', '.join(map(str, sorted(sessions)))} only" in split.describe()
        used.update(sessions)
    assert used == {s: n for s in range(1, 6)}
    assert make_fold(rows, 3, swap, train_sessions=None) == make_fold(rows, 3, swap)
    with pytest.raises(ValueError, match="train_sessions=5 is out of range.*1..4"):
        make_fold(rows, 1, train_sessions=5)
    with pytest.raises(ValueError, match="train_sessions=0"):
        make_fold(rows, 1, train_sessions=0)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.8, 1.0])
def test_a_training_fraction_thins_every_speaker_and_class_alike_and_keeps_validation_and_test(fraction):
    rows = _rows(per_speaker=12)  # three utterances of each class per speaker
    full = make_fold(rows, 2, swap_speakers=True)
    thin = thin_training(rows, full, fraction, seed=0)
    assert (thin.val, thin.test, thin.val_speaker, thin.test_speaker) == (full.val, full.test, full.val_speaker, full.test_speaker)
    assert set(thin.train) <= set(full.train) and thin.train == sorted(thin.train)
    kept = Counter((rows[i].speaker, rows[i].label) for i in thin.train)
    assert kept == {key: max(1, round(fraction * 3)) for key in Counter((rows[i].speaker, rows[i].label) for i in full.train)}
    assert thin_training(rows, full, fraction, seed=0) == thin and f"a fraction {fraction:g}" in thin.describe()
    if fraction == 1.0:
        assert thin.train == full.train
    else:  # another seed, another draw
        assert any(thin_training(rows, full, fraction, seed=s).train != thin.train for s in range(1, 6))
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=f"train_fraction={bad} is out of range"):
            thin_training(rows, full, bad)


def test_fold_errors():
    rows = _rows()
    with pytest.raises(ValueError, match="out of range.*1..5"):
        make_fold(rows, 6)
    leaky = rows + [Utterance("leak", "l.wav", "neu", "1F", 2, True, 1.0)]
    with pytest.raises(LeakageError, match="1F in sessions \\[1, 2\\]"):
        make_fold(leaky, 1)
