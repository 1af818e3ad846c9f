"""EmoDB reader: names, classes, speakers and sessions, what it leaves out, folds, data.corpus,
the manifest command; and the real corpus in ../shared when it is there."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from named_corpora import tone, write_emodb
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
    few = SERDataModule(root=str(corpus[0]), corpus="emodb", fold=5, train_sessions=2, progress=False, cache_dir=str(tmp_path))
    few.setup()  # fold 5 trains on sessions 1 and 2 (wrapping round): speakers 03, 08, 10, 09
    assert {few.rows[i].speaker for i in few.split.train} == {"03", "08", "10", "09"} and len(few.datasets["train"]) == 4 * 7 * 2
    assert (few.split.val_speaker, few.split.test_speaker) == ("15", "16") and sum(few.class_counts) == 4 * 7 * 2
    half = SERDataModule(root=str(corpus[0]), corpus="emodb", fold=5, train_fraction=0.5, progress=False, cache_dir=str(tmp_path))
    half.setup()  # all eight training speakers, one of each one's two utterances of each class
    assert Counter((half.rows[i].speaker, half.rows[i].label) for i in half.split.train) == \
        {(s, c): 1 for s in ("03", "08", "10", "09", "11", "13", "12", "14") for c in emodb.CLASSES}
    assert half.class_counts == [8] * 7 and len(half.datasets["test"]) == 7 * 2
    with pytest.raises(ValueError, match="train_sessions needs folds by session"):
        SERDataModule(emobox=str(tmp_path), audio_root=str(tmp_path), train_sessions=2)
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


# --- the EmoDB table ----------------------------------------------------------------------------

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# UA of each row on the ten folds: AlexNet below FCN + attention on every fold (p < 0.05),
# mean pooling above on some folds and below on others (not significant)
UA = {"fcn_attn_random": [0.80, 0.70, 0.75, 0.85, 0.60, 0.72, 0.66, 0.90, 0.78, 0.81],
      "fcn_meanpool": [0.82, 0.65, 0.75, 0.80, 0.64, 0.70, 0.70, 0.85, 0.79, 0.77],
      "alexnet_random": [0.60, 0.55, 0.58, 0.70, 0.50, 0.61, 0.52, 0.75, 0.60, 0.66]}


def fake_cv(calls, classes=list(emodb.CLASSES)):
    """Stands in for run_crossval: writes each fold's results.json (7 classes) and aggregates."""
    from ser_fcn.study import cv_aggregate, cv_plan

    def run(configs, out, folds, overrides, **kw):
        calls.append((configs, Path(out), folds, overrides))
        names = [f.name for f in cv_plan.fold_list(folds, n_sessions=folds // 2)]
        for i, name in enumerate(names):
            ua = UA[Path(out).name][i]
            cm = [[0] * 7 for _ in range(7)]
            for c in range(7):
                cm[c][c], cm[c][(c + 1) % 7] = round(100 * ua), 100 - round(100 * ua)
            (Path(out) / name).mkdir(parents=True, exist_ok=True)
            (Path(out) / name / "config.yaml").write_text(  # the parts of a fold's resolved config a table reads
                f"data:\n  corpus: {cv_plan.override_value(overrides, 'data.corpus')}\n"
                f"  root: {cv_plan.override_value(overrides, 'data.root')}\n  classes: null\n")
            (Path(out) / name / "results.json").write_text(json.dumps({
                "fold": i % 5 + 1, "swap_speakers": i >= 5, "wa": ua, "ua": ua, "n_utterances": 700,
                "classes": classes, "confusion_matrix": cm, "corpus": "EmoDB", "merge_exc": False}))
        return cv_aggregate.aggregate(out, names, name=Path(out).name)

    return run


def test_emodb_table_rows_published_figures_pairing_tests_and_ablation(corpus, tmp_path, monkeypatch, capsys):
    from ser_fcn.study import references, tables

    calls = []
    monkeypatch.setattr(tables, "run_crossval", fake_cv(calls))
    argv = ["--corpus", "emodb", "--root", str(corpus[0]), "--profile", "quick", "--max-row-hours", "0",
            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--experiments", str(EXPERIMENTS)]
    tables.main(2, argv)
    assert [c[1].name for c in calls] == ["fcn_attn_random", "fcn_meanpool", "alexnet_random"]
    assert all(c[1].parent == tmp_path / "runs" / "quick-emodb" and c[2] == 10 for c in calls)
    assert all(c[3][-4:] == ["--data.corpus", "emodb", "--data.root", str(corpus[0])] for c in calls)
    assert all(Path(c[0][-1]).name == "quick.yaml" for c in calls)  # one profile for every row
    md = (tmp_path / "res" / "emodb.md").read_text()
    assert not (tmp_path / "res" / "table2.md").exists()
    lines = md.splitlines()
    rows = lines[lines.index("| System | WA published | WA here | UA published | UA here |") + 2:][:6]
    assert [r.split(" | ")[0][2:] for r in rows] == [
        "FCN + attention, random init", "FCN + mean pooling (λ = 0), random init", "AlexNet on 3 s segments, random init",
        *(f"{p.system}, Chen et al. 2018" for p in references.EMODB_PUBLISHED)]
    assert "(reference of the tests)" in rows[0]
    assert "\\*" not in rows[1] and "\\*" in rows[2]  # only AlexNet differs significantly (10 pairs, all below)
    for row, (ua, std) in zip(rows[3:], [(82.82, 4.99), (79.38, 7.78), (71.56, 8.43)]):
        assert f"| {ua:.2f} ± {std:.2f} |" in row and references.SAME_PROTOCOL in row
    assert "- Speaker pairing: session 1: 03 (m) + 08 (f); session 2: 10 (m) + 09 (f); session 3: 11 (m) + 13 (f)" in md
    assert "n = 10 folds x 1 seed(s) = 10 runs" in md and f"EmoDB (folder `{corpus[0].name}`)" in md and str(corpus[0]) not in md and "classes neu, hap, sad, ang, bor, dis, fea" in md
    assert "attention pooling beats mean pooling (its section II-B): the order here agrees: mean UA 75.7 against 74.7" in md
    assert "beat 3 s segments (AlexNet; its Table II): the order here agrees" in md and "significant at 0.05" in md
    assert "| System | neu | hap | sad | ang | bor | dis | fea |" in md  # per-class recall of the seven classes
    assert "here the rows have up to 10 pairs (smallest p 0.002)" in md
    assert "## Recipe ablation (validation UA)" in md and "Not written yet: `results/emodb_ablation.md`" in md

    (tmp_path / "res" / "emodb_ablation.md").write_text("| choice | val UA before | after |\n|---|---|---|\n| cosine lr | 60.0 | 70.0 |\n")
    tables.main(2, argv)
    md = (tmp_path / "res" / "emodb.md").read_text()
    assert md.endswith("## Recipe ablation (validation UA)\n\n| choice | val UA before | after |\n|---|---|---|\n"
                       "| cosine lr | 60.0 | 70.0 |\n") and "Not written yet" not in md


ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
            "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()
ORDINALS += [f"twenty-{o}" for o in ORDINALS[:9]]


def test_the_committed_emodb_table_ends_with_the_whole_committed_ablation():
    """results/emodb.md is the table, then results/emodb_ablation.md whole, as `table2 --corpus emodb`
    writes it; and the ablation keeps every probe it has recorded, newest first (a script that
    rewrote it once dropped the earlier probes from both files, and nothing failed)."""
    from ser_fcn.study.table_markdown import ABLATION_HEADING

    results = Path(__file__).resolve().parents[1] / "results"
    md, ablation = (results / "emodb.md").read_text(), (results / "emodb_ablation.md").read_text()
    table, heading, tail = md.partition(f"\n{ABLATION_HEADING}\n\n")
    assert heading and tail == ablation.strip() + "\n"
    assert table.startswith("# EmoDB") and "| FCN + attention, random init |" in table and "- Made by `python -m ser_fcn table2" in table
    sections = [line for line in ablation.splitlines() if line.startswith("### ")]
    dates = [re.search(r"\((\d{4}-\d{2}-\d{2})[,)]", line).group(1) for line in sections]
    assert dates == sorted(dates, reverse=True)  # newest first
    probes = [ORDINALS.index(m.group(1)) + 1 for line in sections
              if (m := re.search(r"\(\d{4}-\d{2}-\d{2}, ([a-z-]+) probe(?:, continued)?\)$", line))]
    assert probes and set(probes) == set(range(1, max(probes) + 1))  # no probe's section lost


def test_emodb_table_defaults_to_the_real_speech_profile_and_needs_table2_and_a_root(corpus, tmp_path, monkeypatch, capsys):
    from ser_fcn.study import tables

    calls = []
    monkeypatch.setattr(tables, "run_crossval", fake_cv(calls))
    tables.main(2, ["--corpus", "emodb", "--root", str(corpus[0]), "--max-row-hours", "0", "--runs", str(tmp_path / "runs"),
                    "--results", str(tmp_path / "res"), "--experiments", str(EXPERIMENTS)])
    assert "profile: real_speech" in capsys.readouterr().out
    assert {c[1].parent.name for c in calls} == {"real_speech-emodb"}
    assert all(Path(c[0][-1]) == EXPERIMENTS / "profiles" / "real_speech.yaml" for c in calls)
    with pytest.raises(SystemExit, match="table2 --corpus emodb"):
        tables.main(1, ["--corpus", "emodb", "--root", str(corpus[0])])
    with pytest.raises(SystemExit, match="needs --root"):
        tables.main(2, ["--corpus", "emodb", "--profile", "quick"])


def test_render_only_writes_the_table_from_the_runs_there_and_trains_nothing(corpus, tmp_path, monkeypatch):
    import shutil

    from ser_fcn.study import tables

    monkeypatch.setattr(tables, "run_crossval", fake_cv([]))
    argv = ["--corpus", "emodb", "--root", str(corpus[0]), "--profile", "quick", "--max-row-hours", "0",
            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--experiments", str(EXPERIMENTS)]
    tables.main(2, argv)  # every row, all ten folds
    runs = tmp_path / "runs" / "quick-emodb"
    for name in ("fold4-swap", "fold5-swap"):  # a row stopped after 8 of its 10 folds
        shutil.rmtree(runs / "fcn_meanpool" / name)
    shutil.rmtree(runs / "alexnet_random")  # and a row never trained
    (runs / "fcn_meanpool" / "aggregate.json").unlink(missing_ok=True)  # a stopped cv writes none

    def no_training(*a, **kw):
        raise AssertionError("--render-only trained a row")

    monkeypatch.setattr(tables, "run_crossval", no_training)
    monkeypatch.setattr(tables, "measure_epoch", no_training)
    tables.main(2, argv + ["--render-only"])
    lines = (tmp_path / "res" / "emodb.md").read_text().splitlines()
    table = lines[lines.index("| System | WA published | WA here | UA published | UA here |") + 2:][:3]
    rows = {r.split(" | ")[0][2:]: r for r in table}
    assert "(only 8/10 runs)" in rows["FCN + mean pooling (λ = 0), random init"]
    assert "only" not in rows["FCN + attention, random init"]
    assert "not trained (the table was written with --render-only)" in rows["AlexNet on 3 s segments, random init"]
    mean = 100 * sum(UA["fcn_meanpool"][:8]) / 8  # its eight runs, not the ten of before
    assert f"{mean:.1f}" in rows["FCN + mean pooling (λ = 0), random init"]
    # with --max-row-hours, only the row that has no runs gets its epoch measured, and the verdict
    measured = []
    monkeypatch.setattr(tables, "measure_epoch", lambda files, overrides: measured.append(files) or
                        {"seconds_per_batch": 120.0, "batches_per_epoch": 100, "timed_batches": 3})
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    tables.main(2, argv + ["--render-only", "--max-row-hours", "1"])
    assert [Path(f[0]).stem for f in measured] == ["alexnet_random"]
    text = (tmp_path / "res" / "emodb.md").read_text()
    # 120 s x 6 batches (quick) x 2 epochs x 5 training runs: ten folds, each fold and its swap sharing one
    assert "needs a GPU: about 2h00m on this machine" in text and "x 5 training runs for 10 runs" in text


@pytest.mark.slow  # 12 fits: ~4 min on a shared 2-core CPU (`make test-slow`)
def test_emodb_table_command_trains_every_row_on_every_fold_of_a_tiny_corpus(tmp_path, monkeypatch, capsys):
    """`table2 --corpus emodb` end to end with the quick profile, each fold's `fit` run in this
    process (a subprocess per fit is cv's own test): two sessions of EmoDB speakers, 4 folds x 3 rows."""
    from ser_fcn.study import crossval, tables

    root = tmp_path / "emodb"
    write_emodb(root, per_class=2, seconds=0.6)
    for wav in (root / "wav").glob("*.wav"):
        if wav.name[:2] not in ("03", "08", "10", "09"):  # sessions 1 and 2 only
            wav.unlink()

    def fit_here(cmd, log, echo=False):
        log.write_text("GPU available: False, used: False\n")
        try:
            main(cmd[cmd.index("fit"):])
        except SystemExit as e:
            return e.code or 0
        return 0

    monkeypatch.setattr(crossval, "launch_fold", fit_here)
    runs, res = tmp_path / "runs", tmp_path / "res"
    tables.main(2, ["--corpus", "emodb", "--root", str(root), "--profile", "quick", "--max-row-hours", "0",
                    "--runs", str(runs), "--results", str(res), "--experiments", str(EXPERIMENTS),
                    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--data.progress", "false"])
    for experiment in ("fcn_attn_random", "fcn_meanpool", "alexnet_random"):
        agg = json.loads((runs / "quick-emodb" / experiment / "aggregate.json").read_text())
        assert agg["complete"] and agg["n_runs"] == 4 and agg["classes"] == list(emodb.CLASSES)
        assert sorted(f["test_speaker"] for f in agg["folds"]) == ["03", "08", "09", "10"]
        assert agg["corpus"] == ["EmoDB"] and agg["resolved_config"]["data"]["corpus"] == "emodb"
    md = (res / "emodb.md").read_text()
    assert "no finished run" not in md and "(only" not in md and f"EmoDB (folder `{root.name}`)" in md
    mtime = (runs / "quick-emodb" / "fcn_attn_random" / "fold1" / "results.json").stat().st_mtime_ns
    capsys.readouterr()
    tables.main(2, ["--corpus", "emodb", "--root", str(root), "--profile", "quick", "--max-row-hours", "0",
                    "--runs", str(runs), "--results", str(res), "--experiments", str(EXPERIMENTS),
                    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--data.progress", "false"])
    assert "(not retrained)" in capsys.readouterr().out  # resumable: a fold with results.json is kept
    assert (runs / "quick-emodb" / "fcn_attn_random" / "fold1" / "results.json").stat().st_mtime_ns == mtime


def test_a_file_added_to_the_folder_gives_a_new_cached_manifest(tmp_path):
    root = tmp_path / "emodb"
    write_emodb(root, per_class=1, letters="WN")
    kw = dict(root=str(root), corpus="emodb", progress=False, cache_dir=str(tmp_path / "cache"))
    first = SERDataModule(**kw)
    first.setup()
    cached = first.manifest_path()
    assert cached.is_file()
    tone(root / "wav" / "03a02Wa.wav", 250)
    again = SERDataModule(**kw)
    assert again.manifest_path() != cached  # not the manifest read before the file was there
    again.setup()
    assert len(again.rows) == len(first.rows) + 1 and "03a02Wa" in {r.utterance_id for r in again.rows}
