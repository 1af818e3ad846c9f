"""EmoBox fold files: schema, reader, validation carving, errors, and fit / cv / tables on them.

The EmoBox folders are written here from the demo corpus (the real metadata is not in this
repository) by the same export as `python -m ser_fcn emobox-demo`.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ser_fcn.cli import main
from ser_fcn.corpora import emobox
from ser_fcn.data.datamodule import SERDataModule
from ser_fcn.corpora.folds import assert_disjoint_speakers
from ser_fcn.study import cv_aggregate, cv_plan, table_markdown, tables
from ser_fcn.study.references import COMMON_PROTOCOL, QUOTED

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
# the fields of EmoBox's data/iemocap/fold_1/*.jsonl records
FIELDS = {"key", "dataset", "wav", "type", "sample_rate", "num_frame", "task", "length", "emo", "channel"}


@pytest.fixture(scope="module")
def box(demo_corpus, tmp_path_factory):
    """(EmoBox folder, audio root) of the demo corpus."""
    return emobox.export_iemocap_tree(demo_corpus.root, tmp_path_factory.mktemp("emobox"), progress=False)


def copy_box(box, tmp_path) -> Path:
    d = tmp_path / "demo"
    shutil.copytree(box[0], d)
    return d


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_follows_emobox_schema_one_fold_per_session(box, demo_corpus):
    folder, audio_root = box
    assert emobox.fold_numbers(folder) == [1, 2, 3, 4, 5]
    assert emobox.read_label_map(folder) == emobox.IEMOCAP_LABEL_MAP
    wanted = Counter(u["label"] for u in demo_corpus.utterances if u["label"] in emobox.IEMOCAP_LABEL_MAP)
    for k in range(1, 6):
        train, test = (records(emobox.fold_file(folder, k, p)) for p in ("train", "test"))
        for r in train + test:
            assert set(r) == FIELDS and not Path(r["wav"]).is_absolute() and (audio_root / r["wav"]).is_file()
        assert {r["key"].split("-", 1)[1][3:5] for r in test} == {f"{k:02d}"}  # fold k tests session k
        assert not {r["key"] for r in train} & {r["key"] for r in test}
        assert Counter(r["emo"] for r in train + test) == wanted  # every utterance of the 5 codes, scripted too


@pytest.mark.parametrize("fold", [1, 4])
def test_reader_and_split_keep_speakers_apart_and_map_labels(box, demo_corpus, fold):
    folder, audio_root = box
    rows, summary = emobox.read_emobox_fold(folder, fold, audio_root, progress=False)
    split = emobox.emobox_split(rows, emobox.fold_keys(folder, fold), fold, seed=0)
    assert sorted(split.train + split.val + split.test) == list(range(len(rows))) == list(range(summary.kept))
    assert_disjoint_speakers(rows, split)  # validation is whole speakers, never a speaker of train or test
    assert {rows[i].session for i in split.test} == {fold} and split.held_out_session == fold
    truth = {u["utterance_id"]: u["label"] for u in demo_corpus.utterances}
    for r in rows:
        assert r.label == emobox.IEMOCAP_LABEL_MAP[truth[r.utterance_id.split("-", 1)[1]]]  # exc -> Happy
    val_speakers = {rows[i].speaker for i in split.val}
    assert split.val_speaker.startswith(",".join(sorted(val_speakers)))
    size = Counter(rows[i].speaker for i in split.train + split.val)
    n = len(split.train) + len(split.val)
    # adding speakers one by one steps past 20 % of the training fold by at most one speaker:
    # the closest stop is within half the largest speaker's share of it
    assert abs(len(split.val) - 0.2 * n) <= max(size.values()) / 2


def test_unknown_speakers_get_a_seeded_random_fifth(box, tmp_path):
    d = copy_box(box, tmp_path)
    for path in d.glob("fold_*/*.jsonl"):  # keys of another corpus: no speaker in them
        rs = records(path)
        path.write_text("".join(json.dumps({**r, "key": f"x-{i}-{r['key'][-4:]}{path.stem}"}) + "\n" for i, r in enumerate(rs)))
    rows, _ = emobox.read_emobox_fold(d, 2, box[1], progress=False)
    assert {r.speaker for r in rows} == {emobox.UNKNOWN_SPEAKER}
    a = emobox.emobox_split(rows, emobox.fold_keys(d, 2), 2, seed=3)
    b = emobox.emobox_split(rows, emobox.fold_keys(d, 2), 2, seed=3)
    c = emobox.emobox_split(rows, emobox.fold_keys(d, 2), 2, seed=4)
    n = len(a.train) + len(a.val)
    assert a == b and a.val != c.val and len(a.val) == round(0.2 * n) and "random 20%" in a.val_speaker
    assert not set(a.val) & set(a.train) and not set(a.val) & set(a.test)


@pytest.mark.parametrize("bad, message", [
    ("{not json", "malformed JSON line"),
    ('{"key": "demo-x", "wav": "a.wav", "emo": "fru"}', "unknown emotion 'fru'"),
    ('{"key": "demo-x", "emo": "neu"}', "missing field(s) wav"),
    (None, "key "),  # None: the file's first line again (then "… already on line 1")
])
def test_a_bad_line_is_an_error_naming_file_and_line(box, tmp_path, bad, message):
    d = copy_box(box, tmp_path)
    path = emobox.fold_file(d, 3, "train")
    lines = path.read_text().splitlines()
    lines.insert(6, bad if bad is not None else lines[0])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(emobox.EmoBoxError) as e:
        emobox.read_emobox_fold(d, 3, box[1], progress=False)
    assert f"{path}:7: {message}" in str(e.value) and (bad is not None or "already on line 1" in str(e.value))


def test_a_missing_wav_is_skipped_and_counted_and_classes_can_be_narrowed(box, tmp_path):
    d = copy_box(box, tmp_path)
    path = emobox.fold_file(d, 1, "test")
    rs = records(path)
    gone = next(i for i, r in enumerate(rs) if r["emo"] == "neu")
    rs[gone]["wav"] = "nowhere/gone.wav"
    path.write_text("".join(json.dumps(r) + "\n" for r in rs))
    full, _ = emobox.read_emobox_fold(box[0], 1, box[1], progress=False)
    rows, summary = emobox.read_emobox_fold(d, 1, box[1], classes=["Neutral", "Sad"], progress=False)
    report = summary.report()
    assert "SKIPPED 1 unusable wav file(s)" in report and "gone.wav: file not found" in report
    assert {r.label for r in rows} == {"Neutral", "Sad"}
    dropped = Counter(r.label for r in full if r.label not in ("Neutral", "Sad"))
    assert summary.excluded_class == dropped
    assert len(rows) == sum(r.label in ("Neutral", "Sad") for r in full) - 1


def test_classes_outside_the_label_map_are_refused(box):
    with pytest.raises(emobox.EmoBoxError, match=r"\['neu'\] are not among its class names"):
        emobox.read_emobox_fold(box[0], 1, box[1], classes=["neu", "Sad"], progress=False)


def test_datamodule_needs_audio_root_and_takes_classes_from_the_label_map(box):
    with pytest.raises(ValueError, match="data.audio_root"):
        SERDataModule(emobox=str(box[0]))
    with pytest.raises(ValueError, match="do not apply to data.emobox"):
        SERDataModule(emobox=str(box[0]), audio_root=str(box[1]), merge_exc=True)
    dm = SERDataModule(emobox=str(box[0]), audio_root=str(box[1]))
    assert dm.classes == ["Neutral", "Happy", "Angry", "Sad"] and dm.corpus_name == "EmoBox demo"
    assert SERDataModule(emobox=str(box[0]), audio_root=str(box[1]), classes=["Sad", "Happy"]).classes == ["Sad", "Happy"]


def test_fold_list_follows_the_emobox_fold_count(box):
    assert [f.name for f in cv_plan.fold_list(3, n_sessions=3, swap=False)] == ["fold1", "fold2", "fold3"]
    with pytest.raises(ValueError, match="use 3"):
        cv_plan.fold_list(6, n_sessions=3, swap=False)  # EmoBox folds have no speaker swap
    assert cv_plan.emobox_folds(str(box[0])) == [1, 2, 3, 4, 5]
    assert cv_plan.emobox_overrides(str(box[0]), "a") == ["--data.emobox", str(box[0]), "--data.audio_root", "a"]
    with pytest.raises(SystemExit, match="--audio-root"):
        cv_plan.emobox_overrides(str(box[0]), None)
    with pytest.raises(SystemExit, match="no label_map.json"):
        cv_plan.emobox_folds(str(box[1]))  # the audio folder, not the metadata one


def test_emobox_demo_command_writes_a_folder_fit_can_use(tmp_path, capsys):
    main(["emobox-demo", "--out", str(tmp_path), "--utterances_per_speaker", "8"])
    folder = tmp_path / "emobox" / "demo"
    assert emobox.fold_numbers(folder) == [1, 2, 3, 4, 5]
    assert f"--data.emobox {folder} --data.audio_root {tmp_path}" in capsys.readouterr().out


def test_fit_and_cv_on_an_emobox_folder_then_table2_says_so(box, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = tmp_path / "cv"
    main(["cv", "--config", str(EXPERIMENTS / "fcn_attn.yaml"), "--emobox", str(box[0]), "--audio-root", str(box[1]),
          "--only", "2", "--out", str(out), "--data.progress", "false", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--data.max_frames_per_batch", "2500", "--model.net.init_args.weights", "null"])
    r = json.loads((out / "fold2" / "results.json").read_text())
    assert r["corpus"] == "EmoBox demo" and r["emobox"] == str(box[0]) and r["fold"] == 2
    assert r["classes"] == ["Neutral", "Happy", "Angry", "Sad"] and "closest to 20%" in r["val_speaker"]
    assert r["test_speaker"] == "2F,2M" and r["n_utterances"] == len(records(emobox.fold_file(box[0], 2, "test")))
    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["missing_folds"] == ["fold1", "fold3", "fold4", "fold5"]
    assert agg["resolved_config"]["data"]["emobox"] == str(box[0])
    line = table_markdown.protocol_line("paper", None, str(box[0]))
    md = tables.render_table(2, [tables.Outcome(tables.TABLE2[0], agg=agg, init="random")], "quick", None, 5, "",
                             line, COMMON_PROTOCOL)
    assert f"EmoBox's fold files `{box[0].name}`" in md and "EmoBox's own folds" in md and "(only 1/5 runs)" in md
    labels = next(ln for ln in md.splitlines() if ln.startswith("- Labels:"))
    assert "EmoBox's label map" in labels and "merge_exc" not in labels and "exc left out" not in labels
    quoted = [ln for ln in md.splitlines() if QUOTED in ln and ln.startswith("| ")]
    assert len(quoted) == len(COMMON_PROTOCOL) and all(ln.endswith("| [1] |") for ln in quoted)


def test_common_protocol_is_a_named_file_and_the_table_states_it():
    path = tables.protocol_path("common", EXPERIMENTS)
    assert path == EXPERIMENTS / "protocols" / "common.yaml"
    assert tables.protocol_path("paper", EXPERIMENTS) is None
    line = table_markdown.protocol_line("common", path)
    assert "`data.include_scripted=true`" in line and "`data.merge_exc=true`" in line
    assert "exc left out" in table_markdown.protocol_line("paper", None)
    with pytest.raises(SystemExit, match="not found"):
        tables.protocol_path("nonesuch", EXPERIMENTS)


def test_an_edited_fold_file_is_read_again_not_taken_from_the_cached_manifest(box, tmp_path):
    d = copy_box(box, tmp_path)
    kw = dict(emobox=str(d), audio_root=str(box[1]), fold=5, progress=False)
    first = SERDataModule(**kw)
    first.setup()
    path = emobox.fold_file(d, 5, "test")
    rs = records(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rs[1:]))
    again = SERDataModule(**kw)
    again.setup()
    ids = set(again.datasets["test"].utterance_ids)
    assert len(ids) == len(first.datasets["test"].utterance_ids) - 1 and rs[0]["key"] not in ids
    assert len(again.rows) == len(first.rows) - 1


def test_table2_common_runs_each_row_with_the_protocol_file_and_writes_its_own_table(tmp_path, monkeypatch):
    calls = []

    def fake_cv(configs, out, folds, overrides, **kw):
        calls.append((configs, Path(out), folds, kw.get("emobox")))
        return cv_aggregate.aggregate(tmp_path / "none", [f"fold{k}" for k in range(1, 6)], name=Path(out).name)

    monkeypatch.setattr(tables, "run_crossval", fake_cv)
    with pytest.raises(SystemExit, match="incomplete"):  # no fold was trained by the fake
        tables.main(2, ["--profile", "quick", "--max-row-hours", "0", "--protocol", "common", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"),
                        "--experiments", str(EXPERIMENTS)])
    assert [Path(c[0][1]).name for c in calls] == ["common.yaml", "common.yaml"]  # after the experiment, before the profile
    assert all(c[1].parent.name == "quick-demo-common" and c[2] == 5 for c in calls)
    md = (tmp_path / "res" / "table2-common.md").read_text()
    assert not (tmp_path / "res" / "table2.md").exists()  # the paper-protocol table is not overwritten
    assert "Protocol of the 'here' columns: **common**" in md and md.count(QUOTED) == len(COMMON_PROTOCOL) + 1
