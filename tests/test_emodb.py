"""EmoDB reader: names, classes, speakers and sessions, what it leaves out, folds, data.corpus,
the manifest command; and the real corpus in ../shared when it is there."""

from collections import Counter
from pathlib import Path

import pytest

from named_corpora import EMODB_LETTERS, tone, write_emodb
from ser_fcn.cli import main
from ser_fcn.corpora import emodb
from ser_fcn.corpora.folds import make_fold
from ser_fcn.corpora.manifest import ManifestError, write_manifest
from ser_fcn.data.datamodule import SERDataModule

SHARED_EMODB = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "emodb"
LEGEND = {"W": "ang", "L": "bor", "E": "dis", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("emodb")
    return root, write_emodb(root, per_class=2)


def test_names_become_classes_speakers_and_paired_sessions(corpus):
    root, written = corpus
    rows, summary = emodb.read_emodb(root, progress=False)
    assert emodb.CLASSES == ("neu", "hap", "sad", "ang", "bor", "dis", "fea") and emodb.EMOTIONS == LEGEND
    assert Counter((r.speaker, r.label) for r in rows) == Counter({(s, LEGEND[x]): n for (s, x), n in written.items()})
    sessions = {r.speaker: r.session for r in rows}
    assert sessions == {"03": 1, "08": 1, "10": 2, "09": 2, "11": 3, "13": 3, "12": 4, "14": 4, "15": 5, "16": 5}
    for k, (male, female) in emodb.SESSIONS.items():
        assert emodb.SEX[male] == "m" and emodb.SEX[female] == "f" and sessions[male] == sessions[female] == k
    r = next(r for r in rows if r.utterance_id == "03a01Fa")
    assert r.label == "hap" and Path(r.path).is_absolute() and r.duration_s == pytest.approx(0.4, abs=1e-3)
    assert summary.kept == summary.audio_files == len(rows) == 10 * 7 * 2
    assert not summary.unknown_names and not summary.bad_audio
    assert emodb.read_emodb(root / "wav", progress=False)[0] == rows  # the wav folder itself, too


def test_ten_folds_are_leave_one_speaker_out_with_a_validation_speaker(corpus):
    rows, _ = emodb.read_emodb(corpus[0], progress=False)
    first = make_fold(rows, 1)
    assert (first.val_speaker, first.test_speaker) == ("03", "08")
    assert (make_fold(rows, 1, swap_speakers=True).val_speaker, make_fold(rows, 1, True).test_speaker) == ("08", "03")
    splits = [make_fold(rows, k, swap) for k in range(1, 6) for swap in (False, True)]
    assert sorted(s.test_speaker for s in splits) == sorted(emodb.SEX)  # every speaker tested once
    assert sorted(s.val_speaker for s in splits) == sorted(emodb.SEX)
    for s in splits:
        train_speakers = {rows[i].speaker for i in s.train}
        assert len(train_speakers) == 8 and {s.val_speaker, s.test_speaker}.isdisjoint(train_speakers)
    with pytest.raises(ValueError, match="folds 1..5"):
        make_fold(rows, 6)


def test_unknown_names_are_listed_and_counted_never_guessed_and_bad_audio_is_skipped(corpus, tmp_path):
    root = tmp_path / "emodb"
    write_emodb(root, per_class=1, letters="WN")
    odd = {"04a01Fa.wav": "unknown speaker '04'", "03a01Xa.wav": "unknown emotion letter 'X'",
           "notes.wav": "not an EmoDB name", "03a01Wab.wav": "not an EmoDB name"}
    for name in odd:
        tone(root / "wav" / name, 200)
    (root / "wav" / "03a02Fa.wav").write_bytes(b"")  # well named, unusable audio
    (root / "wav" / "erkennung.txt").write_text("not audio")  # not a wav: not read at all
    rows, summary = emodb.read_emodb(root, progress=False)
    assert len(rows) == 10 * 2 and summary.kept == 20
    assert summary.audio_files == 20 + len(odd) + 1
    assert len(summary.unknown_names) == len(odd)
    for name, why in odd.items():
        assert any(line.startswith(str(root / "wav" / name) + ":") and why in line for line in summary.unknown_names)
    assert [e.path for e in summary.bad_audio] == [str(root / "wav" / "03a02Fa.wav")]
    report = summary.report()
    assert f"LEFT OUT {len(odd)} file(s) whose names" in report and "SKIPPED 1 unusable" in report and "notes.wav" in report


def test_a_class_subset_leaves_the_other_rows_out_and_counts_them(corpus):
    four = ["neu", "hap", "sad", "ang"]
    rows, summary = emodb.read_emodb(corpus[0], four, progress=False)
    assert {r.label for r in rows} == set(four) and len(rows) == 10 * 4 * 2
    assert summary.excluded_class == Counter({"bor": 20, "dis": 20, "fea": 20})
    assert "left out, label not in the class list: bor 20, dis 20, fea 20" in summary.report()
    with pytest.raises(ValueError, match=r"\['sur'\] are not classes of EmoDB"):
        emodb.read_emodb(corpus[0], ["neu", "sur"], progress=False)


def test_missing_folder_or_no_wavs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        emodb.read_emodb(tmp_path / "nowhere", progress=False)
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        emodb.read_emodb(tmp_path, progress=False)


def test_data_corpus_emodb_trains_all_seven_classes_or_a_subset(corpus, tmp_path):
    dm = SERDataModule(root=str(corpus[0]), corpus="emodb", fold=1, progress=False, cache_dir=str(tmp_path))
    dm.setup()
    assert dm.classes == list(emodb.CLASSES) and dm.num_classes == 7 and dm.corpus_name == "EmoDB"
    assert (dm.split.val_speaker, dm.split.test_speaker) == ("03", "08")
    assert len(dm.datasets["test"]) == 7 * 2 and len(dm.datasets["train"]) == 8 * 7 * 2
    sub = SERDataModule(root=str(corpus[0]), corpus="emodb", classes=["neu", "hap", "sad", "ang"], fold=5,
                        swap_speakers=True, progress=False, cache_dir=str(tmp_path))
    sub.setup()
    assert {r.label for r in sub.rows} == {"neu", "hap", "sad", "ang"} and sub.split.test_speaker == "15"
    assert sub.manifest_path() != dm.manifest_path()  # another class list: another cached manifest
    with pytest.raises(ValueError, match="give data.root"):
        SERDataModule(corpus="emodb")
    with pytest.raises(ValueError, match="IEMOCAP only"):
        SERDataModule(root=str(corpus[0]), corpus="emodb", merge_exc=True)
    with pytest.raises(ValueError, match="not a corpus this package reads"):
        SERDataModule(root=str(corpus[0]), corpus="emodbx")


def test_a_plain_manifest_still_refuses_labels_outside_its_class_list(corpus, tmp_path):
    rows, _ = emodb.read_emodb(corpus[0], progress=False)
    path = write_manifest(rows, tmp_path / "emodb.csv")
    dm = SERDataModule(manifest=str(path), classes=["neu", "hap", "sad", "ang"], progress=False, cache_dir=str(tmp_path))
    with pytest.raises(ManifestError, match=r"outside the class list.*bor \(20\)"):
        dm.setup()


def test_manifest_command_prints_the_summary_and_the_counts(corpus, tmp_path, capsys):
    out = tmp_path / "e.csv"
    main(["manifest", "--corpus", "emodb", "--root", str(corpus[0]), "--out", str(out), "--classes", "ang", "sad"])
    text = capsys.readouterr().out
    assert "140 audio files, 140 labelled by their names" in text and "bor 20, dis 20, fea 20, hap 20, neu 20" in text
    assert "03             2      2      4" in text  # speaker 03: ang 2, sad 2, total 4
    assert f"wrote 40 utterances to {out}" in text and len(out.read_text().splitlines()) == 41
    with pytest.raises(SystemExit, match="IEMOCAP only"):
        main(["manifest", "--corpus", "emodb", "--root", str(corpus[0]), "--out", str(out), "--merge_exc"])


@pytest.mark.skipif(not SHARED_EMODB.is_dir(), reason=f"the real EmoDB is not at {SHARED_EMODB} (only in the development workspace)")
def test_the_real_emodb_has_the_counts_of_its_documentation():
    rows, summary = emodb.read_emodb(SHARED_EMODB, progress=False)
    assert len(rows) == 535 and not summary.unknown_names and not summary.bad_audio
    assert Counter(r.label for r in rows) == {"ang": 127, "bor": 81, "neu": 79, "hap": 71, "fea": 69, "sad": 62, "dis": 46}
    assert Counter(r.speaker for r in rows) == {"03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61,
                                                "14": 69, "15": 56, "16": 71}
    assert {r.session for r in rows} == {1, 2, 3, 4, 5}
