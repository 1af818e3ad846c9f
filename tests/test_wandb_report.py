"""The W&B dashboard of the cross-validations and the tables, read back from offline runs:
fold runs (group, job type, name, confusion matrix, attention images), the aggregate run of a
cv and the run of Table II."""

import json
import os
import re
from pathlib import Path

import pytest

from ser_fcn.cli import main as cli_main
from ser_fcn.cli import run_cli
from ser_fcn.study import cv_aggregate, tables, wandb_report
from ser_fcn.study.crossval import run_crossval

from helpers import REPO, fit_args
from wandb_offline import offline_runs

EXPERIMENTS = REPO / "experiments"
CLASSES = ["neu", "hap", "sad", "ang"]
W_AND_B = {"class_path": "lightning.pytorch.loggers.WandbLogger",
           "init_args": {"project": "ser_fcn", "offline": True, "name": None, "save_dir": "x"}}
CMS = [[[5, 1, 0, 0], [2, 3, 0, 1], [0, 0, 4, 0], [1, 0, 0, 2]],
       [[3, 0, 1, 0], [1, 1, 1, 1], [0, 2, 6, 0], [0, 0, 0, 5]],
       [[7, 0, 0, 0], [0, 2, 0, 0], [3, 0, 1, 0], [0, 0, 1, 1]]]
WANDB_VARS = ("WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME")


class Fit:
    """Stands in for a fold's `fit`: the W&B variables it was started with; results.json and the
    config.yaml (its `trainer.logger`) that a real fit writes."""

    def __init__(self, logger=W_AND_B, shift: int = 0):
        self.logger, self.shift = logger, shift
        self.env: dict[str, dict] = {}

    def __call__(self, cmd: list[str], log: Path) -> int:
        run_dir = Path(cmd[cmd.index("--run_dir") + 1])
        fold = int(cmd[cmd.index("--data.fold") + 1])
        self.env[run_dir.name] = {k: os.environ.get(k) for k in WANDB_VARS}
        cm = CMS[(fold + self.shift) % 3]
        cm = [row[:] for row in cm]
        cm[0][0] += fold * (self.shift + 1)  # each fold and experiment its own figures
        total = sum(map(sum, cm))
        recalls = [row[i] / sum(row) for i, row in enumerate(cm)]
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text(json.dumps({
            "fold": fold, "swap_speakers": False, "corpus": "demo (synthetic)", "merge_exc": False,
            "test_speaker": f"{fold}F", "wa": sum(cm[i][i] for i in range(4)) / total, "ua": sum(recalls) / 4,
            "n_utterances": total, "classes": CLASSES, "confusion_matrix": cm}))
        (run_dir / "config.yaml").write_text(json.dumps({"trainer": {"logger": self.logger}}))  # JSON is YAML
        log.write_text("GPU available: False, used: False\n")
        return 0


def _cv(out: Path, fit: Fit, folds=5, **kwargs) -> dict:
    return run_crossval([str(EXPERIMENTS / "fcn_attn_random.yaml")], out, folds, launch=fit, **kwargs)


# --- fold runs --------------------------------------------------------------------------------


def test_each_fold_fit_is_started_in_the_group_of_its_experiment_with_a_name(tmp_path):
    fit = Fit()
    _cv(tmp_path / "cpu-demo" / "fcn_attn_random", fit, seeds=2, only=[3])
    assert fit.env == {run: {"WANDB_RUN_GROUP": "cpu-demo/fcn_attn_random", "WANDB_JOB_TYPE": "fold",
                             "WANDB_NAME": f"fcn_attn_random/{run}"} for run in ("fold3", "fold3-seed1")}
    assert all(k not in os.environ for k in WANDB_VARS)  # set for the fit only
    assert wandb_report.group_name(tmp_path / "full-iemocap" / "fcn_attn_random", "fcn_attn_random") \
        == "full-iemocap/fcn_attn_random"


def test_a_real_fit_lands_in_its_group_with_the_confusion_matrix_and_attention_images(demo_corpus, tmp_path, monkeypatch):
    """What the cv runner sets (above) reaches W&B: group, job type and name of the run, whose
    test confusion matrix table and attention images are in the offline run folder."""
    run_dir = tmp_path / "cpu-demo" / "fcn_attn_random" / "fold1"
    monkeypatch.setenv("WANDB_RUN_GROUP", "cpu-demo/fcn_attn_random")
    monkeypatch.setenv("WANDB_JOB_TYPE", "fold")
    monkeypatch.setenv("WANDB_NAME", "fcn_attn_random/fold1")
    run_cli(["fit", *fit_args(demo_corpus.root, run_dir, "--trainer.max_epochs", "1",
                               "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2")])
    (run,) = offline_runs(run_dir)
    assert (run.group, run.job_type, run.name, run.project) == ("cpu-demo/fcn_attn_random", "fold",
                                                               "fcn_attn_random/fold1", "ser_fcn")
    results = json.loads((run_dir / "results.json").read_text())
    cm = run.table("test/confusion_matrix")
    assert cm["columns"] == ["true", "predicted", "count"]
    assert cm["data"] == [[t, p, n] for t, row in zip(CLASSES, results["confusion_matrix"]) for p, n in zip(CLASSES, row)]
    (images,) = run.logged("val/attention")  # one validation epoch
    assert images["_type"] == "images/separated" and images["count"] == 1
    assert list((run.folder / "files" / "media" / "images").glob("val/attention_*.png"))
    # the logger settings an aggregate run copies, as the saved config.yaml has them
    assert cv_aggregate.resolved_settings(run_dir)["wandb"] == {"project": "ser_fcn", "entity": None, "offline": True}


def test_no_wandb_logger_no_run_and_nothing_breaks(tmp_path):
    out = tmp_path / "quick-demo" / "fcn_attn_random"
    agg = _cv(out, Fit(logger=False))
    assert agg["complete"] and agg["resolved_config"]["wandb"] is None
    assert not (out / "wandb").exists()
    assert wandb_report.logger_settings([{"class_path": "x.CSVLogger"}, W_AND_B])["project"] == "ser_fcn"


# --- the aggregate run ------------------------------------------------------------------------


def test_the_aggregate_is_a_run_of_the_group_whose_tables_are_aggregate_json(tmp_path):
    out = tmp_path / "cpu-demo" / "fcn_attn_random"
    _cv(out, Fit(), seeds=2)
    agg = json.loads((out / "aggregate.json").read_text())
    (run,) = offline_runs(out)
    assert (run.group, run.job_type, run.name) == ("cpu-demo/fcn_attn_random", "aggregate", "fcn_attn_random/aggregate")

    runs = run.table("cv/runs")
    assert runs["columns"] == ["run", "fold", "swap", "seed", "test speaker", "WA", "UA",
                               "recall neu", "recall hap", "recall sad", "recall ang"]
    assert len(runs["data"]) == 10
    for row, f in zip(runs["data"], agg["folds"], strict=True):
        assert row == [f["name"], f["fold"], False, f["seed"], f["test_speaker"], pytest.approx(f["wa"]),
                       pytest.approx(f["ua"]), *map(pytest.approx, f["recall"])]
    summary = {row[0]: row[1:] for row in run.table("cv/summary")["data"]}
    for key in ("wa", "ua"):
        m = agg[key]
        assert summary[key.upper()] == pytest.approx([m["mean"], m["std"], *m["ci"], 10])
        assert run.summary[f"{key}/mean"] == pytest.approx(m["mean"])
        assert [run.summary[f"{key}/ci_low"], run.summary[f"{key}/ci_high"]] == pytest.approx(m["ci"])
    assert run.summary["n_runs"] == 10 and run.summary["complete"] is True
    assert run.summary["recall/sad"] == pytest.approx(agg["recall"][2])

    _cv(out, Fit(), seeds=2)  # nothing new: no second aggregate run
    assert len(offline_runs(out)) == 1
    _cv(out, Fit(), seeds=3)  # a third seed: a new aggregate
    assert sorted(len(r.table("cv/runs")["data"]) for r in offline_runs(out)) == [10, 15]


def test_online_fits_give_an_online_aggregate_run(tmp_path, monkeypatch):
    import wandb

    made = []

    class Stop(Exception):
        pass

    def fake_init(**kwargs):
        made.append(kwargs)
        raise Stop

    monkeypatch.setattr(wandb, "init", fake_init)
    online = {**W_AND_B, "init_args": {**W_AND_B["init_args"], "offline": False}}
    _cv(tmp_path / "full-iemocap" / "fcn_attn_random", Fit(logger=online), only=[1])
    assert made[0]["mode"] is None and made[0]["group"] == "full-iemocap/fcn_attn_random"  # WANDB_MODE, or online
    _cv(tmp_path / "cpu-demo" / "fcn_attn_random", Fit(), only=[1])
    assert made[1]["mode"] == "offline" and made[1]["job_type"] == "aggregate"


# --- Table II ---------------------------------------------------------------------------------


def _markdown_rows(md: str) -> list[list[str]]:
    lines = md.splitlines()
    start = lines.index("| System | WA paper | WA here | UA paper | UA here |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line[1:-1].split("|")])
    return rows


def test_table2_is_a_table_run_whose_rows_are_the_rendered_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # fcn_attn (ImageNet) is not run: a note
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    shifts = {"fcn_attn_random": 0, "fcn_meanpool": 1}
    real = tables.run_crossval
    monkeypatch.setattr(tables, "run_crossval", lambda configs, out, folds, overrides, **kw:
                        real(configs, out, folds, overrides, launch=Fit(shift=shifts[kw["name"]]), **kw))
    results = tmp_path / "results"
    cli_main(["table2", "--profile", "quick", "--max-row-hours", "0", "--runs", str(tmp_path / "runs"), "--results", str(results)])
    runs = tmp_path / "runs" / "quick-demo"  # <runs>/<profile>-<corpus>

    md = (results / "table2.md").read_text()
    (run,) = offline_runs(runs)
    assert (run.group, run.job_type, run.name) == ("quick-demo/table2", "table", "table2")
    logged = run.table("table2")
    cols = logged["columns"]
    assert cols[:5] == ["System", "WA paper", "WA here", "UA paper", "UA here"]
    assert [row[:5] for row in logged["data"]] == _markdown_rows(md)
    by_exp = {row[cols.index("experiment")]: dict(zip(cols, row)) for row in logged["data"]}
    for exp in shifts:
        agg = json.loads((runs / exp / "aggregate.json").read_text())
        row = by_exp[exp]
        assert row["UA here %"] == pytest.approx(100 * agg["ua"]["mean"])
        assert [row["WA ci low %"], row["WA ci high %"]] == pytest.approx([100 * x for x in agg["wa"]["ci"]])
        assert row["n runs"] == 5
        assert run.summary[f"{exp}/ua"] == pytest.approx(agg["ua"]["mean"])
    assert by_exp["fcn_attn_random"]["reference"] is True and by_exp["fcn_attn_random"]["p (UA vs reference)"] is None
    p = by_exp["fcn_meanpool"]["p (UA vs reference)"]
    assert f"p = {p:.4g}" in md  # the footnote's p
    assert by_exp["fcn_attn"]["note"].startswith("not run: ImageNet weights unavailable")
    assert by_exp["fcn_attn"]["WA here %"] is None
    paper = next(dict(zip(cols, r)) for r in logged["data"] if r[0] == "CNN+LSTM Model1 in [9]")
    assert (paper["WA paper %"], paper["UA paper %"], paper["note"]) == (68.8, 59.4, "not reproduced here")
    # one aggregate run per row that ran, in its own group
    groups = {r.group: r.job_type for exp in shifts for r in offline_runs(runs / exp)}
    assert groups == {"quick-demo/fcn_attn_random": "aggregate", "quick-demo/fcn_meanpool": "aggregate"}
    assert re.search(r"W&B: logged the table run table2 of group quick-demo/table2", capsys.readouterr().out)
