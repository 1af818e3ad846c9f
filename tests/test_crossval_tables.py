"""Cross-validation runner (aggregate, resume, failures) and the paper's tables."""

import json
import statistics
from pathlib import Path

import pytest

from ser_fcn.cli import main, run_cli
from ser_fcn.study import crossval, cv_aggregate, cv_plan, tables
from ser_fcn.study.crossval import run_crossval
from ser_fcn.study.cv_aggregate import aggregate
from ser_fcn.study.cv_plan import fold_list

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
CLASSES = ["neu", "hap", "sad", "ang"]


def write_results(run_dir: Path, fold: int, cm, swap=False, classes=CLASSES, corpus="demo (synthetic)") -> dict:
    total = sum(map(sum, cm))
    recalls = [row[i] / sum(row) for i, row in enumerate(cm) if sum(row)]
    r = {"config": "x", "corpus": corpus, "fold": fold, "swap_speakers": swap, "merge_exc": False,
         "wa": sum(cm[i][i] for i in range(len(cm))) / total, "ua": sum(recalls) / len(recalls),
         "n_utterances": total, "classes": classes, "confusion_matrix": cm}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(r))
    return r


CMS = {
    1: [[5, 1, 0, 0], [2, 3, 0, 1], [0, 0, 4, 0], [1, 0, 0, 2]],
    2: [[3, 0, 1, 0], [1, 1, 1, 1], [0, 2, 6, 0], [0, 0, 0, 5]],
    3: [[7, 0, 0, 0], [0, 2, 0, 0], [3, 0, 1, 0], [0, 0, 1, 1]],
}


# --- aggregate --------------------------------------------------------------------------------


def test_aggregate_mean_std_and_summed_confusion(tmp_path):
    rs = [write_results(tmp_path / f"fold{k}", k, cm) for k, cm in CMS.items()]
    agg = aggregate(tmp_path, [f.name for f in fold_list(5)])
    assert agg["n_folds"] == 3 and not agg["complete"] and agg["missing_folds"] == ["fold4", "fold5"]
    for key in ("wa", "ua"):
        values = [r[key] for r in rs]
        assert agg[key]["mean"] == pytest.approx(statistics.mean(values))
        assert agg[key]["std"] == pytest.approx(statistics.stdev(values))  # sample std, n - 1
    summed = [[sum(CMS[k][i][j] for k in CMS) for j in range(4)] for i in range(4)]
    assert agg["confusion_matrix"] == summed and agg["classes"] == CLASSES
    assert agg["pooled"]["wa"] == pytest.approx(sum(summed[i][i] for i in range(4)) / sum(map(sum, summed)))
    assert agg["pooled"]["ua"] == pytest.approx(statistics.mean(summed[i][i] / sum(summed[i]) for i in range(4)))


def test_aggregate_of_one_fold_has_no_std_and_mixed_classes_are_refused(tmp_path):
    write_results(tmp_path / "fold1", 1, CMS[1])
    agg = aggregate(tmp_path, ["fold1"])
    assert agg["complete"] and agg["wa"]["std"] is None
    write_results(tmp_path / "fold2", 2, CMS[2], classes=["neu", "hap", "sad", "fru"])
    with pytest.raises(ValueError, match="classes"):
        aggregate(tmp_path, ["fold1", "fold2"])


def test_fold_list_five_ten_and_bad_counts():
    assert [f.name for f in fold_list(5)] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    ten = fold_list(10)
    assert len(ten) == 10 and ten[5].name == "fold1-swap" and ten[5].swap
    assert [f.name for f in fold_list(10, only=[2])] == ["fold2", "fold2-swap"]
    with pytest.raises(ValueError, match="--folds 4"):
        fold_list(4)


# --- resume, with a fake fold runner ---------------------------------------------------------


class FakeFit:
    """Stands in for `python -m ser_fcn fit`: records the folds it trains, writes results.json
    (with `--swap_run_dir`, the swapped fold's too, as one training run serving both does).
    A run named in `fail` dies mid-training; a swap partner named there fails its test."""

    def __init__(self, fail: set[str] = frozenset()):
        self.trained: list[str] = []
        self.commands: dict[str, list[str]] = {}
        self.found: dict[str, list[str]] = {}  # the files of each run folder when its fit started
        self.fail = set(fail)

    def __call__(self, cmd: list[str], log: Path) -> int:
        run_dir = Path(cmd[cmd.index("--run_dir") + 1])
        fold = int(cmd[cmd.index("--data.fold") + 1])
        swap = cmd[cmd.index("--data.swap_speakers") + 1] == "true"
        assert cmd[cmd.index("fit") - 2:cmd.index("fit")] == ["-m", "ser_fcn"]
        self.trained.append(run_dir.name)
        self.commands[run_dir.name] = cmd
        self.found[run_dir.name] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
        log.write_text("GPU available: False, used: False\n")
        if run_dir.name in self.fail:
            (run_dir / "checkpoints").mkdir(parents=True)  # died mid-fold
            return 1
        write_results(run_dir, fold, CMS[1 + fold % 3], swap=swap)
        if "--swap_run_dir" in cmd:
            swap_dir = Path(cmd[cmd.index("--swap_run_dir") + 1])
            self.served = getattr(self, "served", []) + [swap_dir.name]
            if swap_dir.name in self.fail:
                return 1
            write_results(swap_dir, fold, CMS[1 + (fold + 1) % 3], swap=not swap)
        return 0


def test_only_missing_or_unfinished_folds_are_trained_again(tmp_path):
    out, cfg = tmp_path / "cv", [str(EXPERIMENTS / "fcn_attn.yaml")]
    fit = FakeFit()
    agg = run_crossval(cfg, out, 5, launch=fit)
    assert fit.trained == [f"fold{k}" for k in range(1, 6)] and agg["complete"]
    assert json.loads((out / "aggregate.json").read_text())["n_folds"] == 5
    assert json.loads((out / "fold1" / "cv_fold.json").read_text())["device"].startswith("CPU")
    mtimes = {k: (out / f"fold{k}" / "results.json").stat().st_mtime_ns for k in range(1, 6)}

    fit.trained.clear()
    run_crossval(cfg, out, 5, launch=fit)  # everything done: nothing trains
    assert fit.trained == []

    (out / "fold3" / "results.json").unlink()  # a lost result
    (out / "fold4" / "results.json").unlink()  # a fold killed mid-run: folder without results
    (out / "fold4" / "stale.ckpt").write_text("half a checkpoint")
    agg = run_crossval(cfg, out, 5, launch=fit)
    assert fit.trained == ["fold3", "fold4"] and agg["complete"]
    assert not (out / "fold4" / "stale.ckpt").exists()  # cleared before retraining
    for k in (1, 2, 5):
        assert (out / f"fold{k}" / "results.json").stat().st_mtime_ns == mtimes[k]


def test_a_finished_fold_keeps_only_its_tested_checkpoint(tmp_path):
    def fit(cmd, log):
        run_dir = Path(cmd[cmd.index("--run_dir") + 1])
        (run_dir / "checkpoints").mkdir(parents=True)
        for name in ("best-epoch01.ckpt", "last.ckpt", "latest-epoch02.ckpt"):
            (run_dir / "checkpoints" / name).write_bytes(b"x" * 10)
        r = write_results(run_dir, 1, CMS[1])
        best = run_dir / "checkpoints" / "best-epoch01.ckpt"
        (run_dir / "results.json").write_text(json.dumps({**r, "ckpt_path": str(best) if run_dir.name == "fold1" else None}))
        return 0

    run_crossval([str(EXPERIMENTS / "fcn_attn.yaml")], tmp_path, 5, launch=fit, only=[1, 2])
    assert sorted(p.name for p in (tmp_path / "fold1" / "checkpoints").iterdir()) == ["best-epoch01.ckpt"]
    assert len(list((tmp_path / "fold2" / "checkpoints").iterdir())) == 3  # tested checkpoint unknown: keep all


def test_a_failed_fold_does_not_stop_the_others(tmp_path, capsys):
    out, cfg = tmp_path / "cv", [str(EXPERIMENTS / "fcn_attn.yaml")]
    agg = run_crossval(cfg, out, 10, launch=FakeFit(fail={"fold2"}), share=False)
    assert agg["n_folds"] == 9 and agg["missing_folds"] == ["fold2"] and not agg["complete"]
    assert "FAILED" in capsys.readouterr().out
    fit = FakeFit()
    assert run_crossval(cfg, out, 10, launch=fit, share=False)["complete"] and fit.trained == ["fold2"]


def test_a_fold_and_its_swap_share_one_training_run(tmp_path, capsys):
    """Ten folds take five fits, each given its partner's folder; the aggregate has all ten."""
    out, cfg = tmp_path / "cv", [str(EXPERIMENTS / "fcn_attn.yaml")]
    fit = FakeFit()
    agg = run_crossval(cfg, out, 10, launch=fit)
    assert fit.trained == [f"fold{k}" for k in range(1, 6)] and fit.served == [f"fold{k}-swap" for k in range(1, 6)]
    for k in range(1, 6):
        cmd = fit.commands[f"fold{k}"]
        assert cmd[cmd.index("--swap_run_dir") + 1] == str(out / f"fold{k}-swap")
        assert cmd[cmd.index("--data.swap_speakers") + 1] == "false"
        assert json.loads((out / f"fold{k}" / cv_plan.SHARED).read_text()) == {"swap_run": f"fold{k}-swap"}
        meta = json.loads((out / f"fold{k}-swap" / "cv_fold.json").read_text())
        assert meta["trained_in"] == f"fold{k}" and meta["wall_s"] == 0  # the wall time is counted once, in fold k
    assert agg["complete"] and agg["n_runs"] == 10
    assert sorted((f["fold"], f["swap_speakers"]) for f in agg["folds"]) == [(k, s) for k in range(1, 6) for s in (False, True)]
    assert "5 training runs" in capsys.readouterr().out


def test_a_shared_run_that_failed_trains_again_and_one_begun_alone_resumes_alone(tmp_path):
    out, cfg = tmp_path / "cv", [str(EXPERIMENTS / "fcn_attn.yaml")]
    agg = run_crossval(cfg, out, 10, launch=FakeFit(fail={"fold2", "fold3-swap"}), only=[2, 3])
    assert sorted(agg["missing_folds"])[:3] == ["fold1", "fold1-swap", "fold2"]
    assert {"fold2", "fold2-swap", "fold3-swap"} <= set(agg["missing_folds"]) and "fold3" not in agg["missing_folds"]
    fit = FakeFit()
    run_crossval(cfg, out, 10, launch=fit, only=[2, 3])
    assert fit.trained == ["fold2", "fold3-swap"]  # fold 2 shared again; fold 3 is done, so its swap trains alone
    assert "--swap_run_dir" in fit.commands["fold2"] and "--swap_run_dir" not in fit.commands["fold3-swap"]

    # fold 4 begun alone (last.ckpt, no SHARED marker) resumes alone; its swap then trains alone
    (out / "fold4" / "checkpoints").mkdir(parents=True)
    (out / "fold4" / "checkpoints" / "last.ckpt").write_text("x")
    fit = FakeFit()
    run_crossval(cfg, out, 10, launch=fit, only=[4])
    assert fit.trained == ["fold4", "fold4-swap"] and "--swap_run_dir" not in fit.commands["fold4"]
    assert fit.commands["fold4"][fit.commands["fold4"].index("--ckpt_path") + 1].endswith("last.ckpt")

    # a shared run left unfinished (marker and last.ckpt) resumes shared, keeping its partner's best checkpoint
    (out / "fold5" / "checkpoints").mkdir(parents=True)
    (out / "fold5" / "checkpoints" / "last.ckpt").write_text("x")
    (out / "fold5" / cv_plan.SHARED).write_text("{}")
    (out / "fold5-swap" / "checkpoints").mkdir(parents=True)
    (out / "fold5-swap" / "checkpoints" / "best-epoch03.ckpt").write_text("x")
    fit = FakeFit()
    run_crossval(cfg, out, 10, launch=fit, only=[5])
    assert fit.trained == ["fold5"] and "--swap_run_dir" in fit.commands["fold5"] and "--ckpt_path" in fit.commands["fold5"]
    assert (out / "fold5-swap" / "checkpoints" / "best-epoch03.ckpt").is_file() and (out / "fold5-swap" / "results.json").is_file()


def test_another_setup_in_the_same_folder_and_reserved_overrides_are_refused(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text((EXPERIMENTS / "fcn_attn.yaml").read_text())
    out, cfg = tmp_path / "cv", [str(exp)]
    run_crossval(cfg, out, 5, launch=FakeFit())
    exp.write_text("# a new comment changes nothing\n" + exp.read_text())
    fit = FakeFit()
    assert run_crossval(cfg, out, 5, launch=fit)["complete"] and fit.trained == []
    with pytest.raises(SystemExit, match="another setup"):
        run_crossval(cfg, out, 5, ["--trainer.max_epochs", "3"], launch=FakeFit())
    exp.write_text(exp.read_text().replace("lam: 0.3", "lam: 0.5"))
    with pytest.raises(SystemExit, match="another setup"):
        run_crossval(cfg, out, 5, launch=FakeFit())
    with pytest.raises(SystemExit, match="--data.fold"):
        run_crossval(cfg, tmp_path / "cv2", 5, ["--data.fold", "2"], launch=FakeFit())


def test_a_cv_folder_resumes_in_another_clone(tmp_path, monkeypatch):
    """The setup record names base.yaml by its place in the package: the same settings read from
    another clone's copy (another folder) are the same setup, so the folder resumes there; a
    changed base.yaml there is another setup."""
    out, cfg = tmp_path / "cv", [str(EXPERIMENTS / "fcn_attn.yaml")]
    run_crossval(cfg, out, 5, launch=FakeFit())
    clone_base = tmp_path / "elsewhere" / "ser_fcn" / "configs" / "base.yaml"
    clone_base.parent.mkdir(parents=True)
    clone_base.write_text(crossval.BASE_CONFIG.read_text())
    monkeypatch.setattr(crossval, "BASE_CONFIG", clone_base)
    fit = FakeFit()
    assert run_crossval(cfg, out, 5, launch=fit)["complete"] and fit.trained == []
    clone_base.write_text(clone_base.read_text().replace("max_epochs: 30", "max_epochs: 31"))
    with pytest.raises(SystemExit, match="another setup"):
        run_crossval(cfg, out, 5, launch=FakeFit())


def test_a_config_edited_during_the_run_stops_it(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text((EXPERIMENTS / "fcn_attn.yaml").read_text())
    fake = FakeFit()

    def fit_then_edit(cmd, log):
        exp.write_text(exp.read_text().replace("lam: 0.3", "lam: 0.7"))
        return fake(cmd, log)

    with pytest.raises(SystemExit, match="changed while"):
        run_crossval([str(exp)], tmp_path / "cv", 5, launch=fit_then_edit)
    assert fake.trained == ["fold1"]


# --- a tiny real cross-validation: subprocess folds, the speaker swap, resume --------------------


@pytest.mark.slow  # a subprocess-heavy end-to-end run: `make test-slow` (CI runs it)
def test_real_fold_in_a_subprocess_then_resume_retrains_only_the_lost_fold(demo_corpus, tmp_path, monkeypatch):
    launched = []
    real = crossval.launch_fold
    monkeypatch.setattr(crossval, "launch_fold", lambda cmd, log, echo=False: launched.append(log.stem) or real(cmd, log, echo))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = tmp_path / "cv"
    argv = ["cv", "--config", str(EXPERIMENTS / "fcn_attn.yaml"), "--folds", "10", "--only", "1", "--out", str(out),
            "--data.root", str(demo_corpus.root), "--data.progress", "false", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--data.max_frames_per_batch", "2500",
            "--model.net.init_args.weights", "null"]  # fcn_attn.yaml says imagenet: the override must show
    write_results(out / "fold1", 1, CMS[1])  # done by an earlier run: one real fit is enough here
    main(argv)  # `cv` is registered in COMMANDS
    assert launched == ["fold1-swap"]
    swapped = json.loads((out / "fold1-swap" / "results.json").read_text())
    assert swapped["test_speaker"] == "1F" and swapped["val_speaker"] == "1M" and swapped["swap_speakers"]
    post = swapped["posteriors"]  # each of the test speaker's utterances once; argmax gives the confusion matrix
    assert len(set(post["utterance_ids"])) == len(post["utterance_ids"]) == swapped["n_utterances"]
    assert all(u.startswith("Ses01") and u.rsplit("_", 1)[1][0] == "F" for u in post["utterance_ids"])
    cm = [[0] * len(swapped["classes"]) for _ in swapped["classes"]]
    for y, p in zip(post["labels"], post["probs"]):
        cm[y][p.index(max(p))] += 1
        assert sum(p) == pytest.approx(1, abs=1e-4)
    assert cm == swapped["confusion_matrix"]
    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["n_folds"] == 2 and agg["missing_folds"] == [f.name for f in fold_list(10) if f.fold != 1]
    assert sum(map(sum, agg["confusion_matrix"])) == sum(map(sum, CMS[1])) + swapped["n_utterances"]
    assert agg["resolved_config"]["net"]["weights"] is None and tables.resolved_init(agg) == "random"

    kept = (out / "fold1" / "results.json").stat().st_mtime_ns
    (out / "fold1-swap" / "results.json").unlink()  # lost: the folder stays, without results
    fit = FakeFit()  # the retraining itself is the same subprocess as above; count what is launched
    monkeypatch.setattr(crossval, "launch_fold", lambda cmd, log, echo=False: fit(cmd, log))
    main(argv)
    assert fit.trained == ["fold1-swap"] and (out / "fold1" / "results.json").stat().st_mtime_ns == kept
    assert not (out / "fold1-swap" / "checkpoints").exists()  # the unfinished folder was cleared first


# --- tables -----------------------------------------------------------------------------------


def _agg(tmp_path: Path, name: str, scale: int = 1) -> dict:
    for k in range(1, 6):
        write_results(tmp_path / name / f"fold{k}", k, [[n * scale for n in row] for row in CMS[1 + k % 3]])
    agg = aggregate(tmp_path / name, [f"fold{k}" for k in range(1, 6)], name=name)
    agg["devices"] = ["CPU: Test CPU (2 cores)"]
    agg["resolved_config"] = {"net": {"weights": None}, "data": {"demo_utterances_per_speaker": 16, "include_scripted": False}}
    (tmp_path / name / "aggregate.json").write_text(json.dumps(agg))
    return agg


def main_rows(md: str) -> list[str]:
    """The rows of a table's first markdown table (not the per-class recall table beneath)."""
    lines = md.splitlines()
    start = lines.index("|---|---|---|---|---|") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("| "))
    return lines[start:end]


def test_table1_markdown_has_the_papers_rows_and_figures_and_what_produced_it(tmp_path):
    agg = _agg(tmp_path, "alexnet_random")
    outcomes = [tables.Outcome(tables.TABLE1[0], agg=agg, init="random"),
                tables.Outcome(tables.TABLE1[1], note=tables.OFFLINE),
                tables.Outcome(tables.TABLE1[2], agg=agg, init="random"),
                tables.Outcome(tables.TABLE1[3], note=tables.OFFLINE)]
    md = tables.render_table(1, outcomes, "quick", EXPERIMENTS / "profiles" / "quick.yaml")
    assert "| System | WA paper | WA here | UA paper | UA here |" in md
    rows = main_rows(md)
    assert [r.split(" | ")[0][2:] for r in rows] == ["AlexNet Random-init", "AlexNet Finetuning",
                                                      "VGGNet-16 Random-init", "VGGNet-16 Finetuning"]
    for row, (wa, ua) in zip(rows, [(66.5, 54.8), (67.9, 57.3), (65.3, 54.8), (66.8, 56.7)]):
        assert f"| {wa} |" in row and f"| {ua} |" in row
    ci = agg["wa"]["ci"]
    here = f"{100 * agg['wa']['mean']:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    assert here in rows[0] and "not run: ImageNet weights unavailable (offline)" in rows[1]
    assert "SYNTHETIC demo corpus" in md and "improvised dialogs only" in md and "classes neu, hap, sad, ang" in md
    assert "merge_exc false" in md and "Device: CPU: Test CPU (2 cores)" in md and "**quick**" in md
    assert "ImageNet weights used by: no row" in md


def test_table2_has_the_papers_rows_the_best_baseline_and_mean_pooling(tmp_path):
    _agg(tmp_path, "alexnet_random")
    _agg(tmp_path, "vgg16_random", scale=2)  # same recalls: the tie goes to the higher WA, equal too
    fcn = _agg(tmp_path, "fcn_attn")
    best = tables.best_baseline(tmp_path)
    assert best.row.experiment in ("alexnet_random", "vgg16_random") and best.row.system.startswith("Best baseline")
    outcomes = [tables.Outcome(tables.TABLE2[0], agg=fcn, init="ImageNet (torchvision)"),
                tables.Outcome(tables.TABLE2[1], agg=fcn, init="random"),
                *(tables.Outcome(r, note="not reproduced here") for r in tables.TABLE2[2:]),
                best, tables.Outcome(tables.MEANPOOL, agg=fcn, init="random")]
    md = tables.render_table(2, outcomes, "quick", EXPERIMENTS / "profiles" / "quick.yaml")
    for system, wa, ua in [("Our FCN+Attention", 70.4, 63.9), ("CNN+LSTM Model1 in [9]", 68.8, 59.4),
                           ("CNN+LSTM Model2 in [9]", 67.3, 62.0)]:
        assert any(line.startswith(f"| {system} | {wa} |") and f"| {ua} |" in line for line in md.splitlines())
    assert "mean pooling" in md and "(Table I)" in md and "Satt et al. 2017" in md
    assert "Our FCN+Attention: ImageNet (torchvision); Our FCN+Attention, random init (not in the paper): random" in md
    assert tables.best_baseline(tmp_path / "nothing").note.startswith("no Table I aggregate")


def test_finetune_rows_are_not_run_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached download
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # offline even where there is a network
    ran = []
    def fake_crossval(configs, out, folds, overrides, **kwargs):  # what the folds' config.yaml would say
        ran.append(((configs, out, folds, overrides), kwargs))
        return {"resolved_config": {"net": {"weights": cv_plan.override_value(overrides, "model.net.init_args.weights")}}}

    monkeypatch.setattr(tables, "run_crossval", fake_crossval)
    s = tables.Setup("quick", EXPERIMENTS / "profiles" / "quick.yaml", EXPERIMENTS, tmp_path / "runs")
    o = tables.run_row(tables.TABLE1[1], s)
    assert o.note == tables.OFFLINE and o.agg is None and ran == []  # never trained from random init

    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "vgg16.pth").write_bytes(b"")  # a local file is used as is (the fit checks its content)
    s.weights_dir = weights
    o = tables.run_row(tables.TABLE1[3], s)
    (configs, out, folds, overrides), _ = ran[0]
    assert overrides[-2:] == ["--model.net.init_args.weights", str((weights / "vgg16.pth").resolve())]
    assert o.init.startswith("ImageNet") and Path(out).name == "vgg16_finetune"
    assert tables.run_row(tables.TABLE1[1], s).note.startswith(tables.OFFLINE + "; no alexnet.pth")


def test_render_only_shows_a_fine_tuned_rows_runs_on_a_machine_without_its_weights(tmp_path, monkeypatch):
    """--render-only reads the runs a row's folder holds before it looks for ImageNet weights: runs
    trained elsewhere (a GPU machine) render here; a row without runs still says why it is missing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached download
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    looked = []
    monkeypatch.setattr(tables, "find_imagenet", lambda arch, d: looked.append(arch) or (None, tables.OFFLINE))
    s = tables.Setup("quick", EXPERIMENTS / "profiles" / "quick.yaml", EXPERIMENTS, tmp_path / "runs", render_only=True)
    rs = [write_results(s.runs / "alexnet_finetune" / f"fold{k}", k, cm) for k, cm in CMS.items()]
    o = tables.run_row(tables.TABLE1[1], s)
    assert looked == [] and o.agg["n_runs"] == 3 and o.note is None
    assert abs(o.agg["ua"]["mean"] - sum(r["ua"] for r in rs) / 3) < 1e-9
    assert tables.run_row(tables.TABLE1[3], s).note == tables.OFFLINE and looked == ["vgg16"]  # no runs: the lookup's verdict


def test_an_init_override_on_the_command_line_runs_the_row_and_the_table_reads_it(tmp_path, monkeypatch, capsys):
    """Offline, fcn_attn.yaml (ImageNet) with `--model.net.init_args.weights null` trains from
    random init, and the row's initialisation comes from the resolved config of its runs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    override = ["--model.net.init_args.weights=null"]

    def fold_config(configs, out, folds, overrides, **kwargs):  # the resolved config a fold would save
        with pytest.raises(SystemExit):
            run_cli(["fit", *(w for c in configs for w in ("--config", c)), *overrides, "--print_config"])
        (Path(out) / "fold1").mkdir(parents=True)
        (Path(out) / "fold1" / "config.yaml").write_text(capsys.readouterr().out)
        return {"resolved_config": cv_aggregate.resolved_settings(Path(out) / "fold1")}

    monkeypatch.setattr(tables, "run_crossval", fold_config)
    s = tables.Setup("quick", EXPERIMENTS / "profiles" / "quick.yaml", EXPERIMENTS, tmp_path / "runs", overrides=override)
    fcn = next(r for r in tables.TABLE2 if r.experiment == "fcn_attn")
    assert tables.run_row(fcn, s).init == "random"
    s.overrides = []
    assert tables.run_row(fcn, s).note == tables.OFFLINE  # as the file says: ImageNet, unavailable here


# --- experiment files -------------------------------------------------------------------------


SEGMENTED = ["alexnet_random", "alexnet_finetune", "vgg16_random", "vgg16_finetune"]


@pytest.mark.parametrize("name", sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")))
def test_every_experiment_file_parses_and_the_baselines_are_segmented(name, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(["fit", "--config", str(EXPERIMENTS / f"{name}.yaml"),
                 "--config", str(EXPERIMENTS / "profiles" / "quick.yaml"), "--print_config"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert ("segmented: true" in out) == (name in SEGMENTED)
    if name in SEGMENTED:
        assert "ser_fcn.models.SegmentClassifier" in out and f"arch: {name.split('_')[0]}" in out
        assert ("weights: imagenet" in out) == name.endswith("finetune")
    if name == "fcn_meanpool":
        assert "lam: 0.0" in out
    assert "limit_train_batches: 6" in out  # the profile is applied after the experiment


def test_profiles_parse():
    for profile in (EXPERIMENTS / "profiles").glob("*.yaml"):
        with pytest.raises(SystemExit) as e:
            run_cli(["fit", "--config", str(EXPERIMENTS / "fcn_attn.yaml"), "--config", str(profile), "--print_config"])
        assert e.value.code == 0, profile


def test_the_made_by_command_hides_the_users_folders():
    from ser_fcn.study.table_markdown import FOLDER_OPTIONS, public_words

    words = ["--corpus", "emodb", "--seeds", "2"]
    for option in FOLDER_OPTIONS:
        words += [option, f"/home/someone/{option[2:]}", f"{option}=/data/{option[2:]}"]
    shown = public_words(words)
    assert not any("/" in w for w in shown), shown  # no folder survives, in either form
    assert shown[:4] == ["--corpus", "emodb", "--seeds", "2"]  # every other word is kept
    assert shown.count("<DIR>") == len(FOLDER_OPTIONS) and len(shown) == len(words)
