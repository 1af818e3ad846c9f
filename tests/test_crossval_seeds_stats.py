"""Seeds, resume from last.ckpt, confidence intervals and paired tests of the cv runner and tables."""

import json
import random
import subprocess
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from ser_fcn.cli import main
from ser_fcn.study import crossval, table_markdown, tables
from ser_fcn.study.crossval import run_crossval
from ser_fcn.study.cv_aggregate import aggregate, summary_line
from ser_fcn.study.stats import mean_ci, paired_wilcoxon, smallest_p
from ser_fcn.utils import atomic

from test_crossval_tables import CLASSES, CMS, EXPERIMENTS, REPO, FakeFit, main_rows, write_results

CFG = [str(EXPERIMENTS / "fcn_attn.yaml")]


def arg(cmd: list[str], flag: str) -> str | None:
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


# --- seeds -----------------------------------------------------------------------------------


def test_seeds_train_every_fold_with_each_seed_in_its_own_folder(tmp_path):
    out, fit = tmp_path / "cv", FakeFit()
    run_crossval(CFG, out, 5, launch=fit)  # one seed, as before seeds existed
    assert fit.trained == [f"fold{k}" for k in range(1, 6)]
    assert {arg(c, "--seed_everything") for c in fit.commands.values()} == {"0"}

    fit = FakeFit()
    agg = run_crossval(CFG, out, 5, launch=fit, seeds=3)  # seed 0 is done: only seeds 1 and 2 train
    assert fit.trained == [f"fold{k}-seed{s}" for s in (1, 2) for k in range(1, 6)]
    for name, cmd in fit.commands.items():
        seed, fold = name.split("-seed")[1], name.split("-")[0][len("fold"):]
        assert arg(cmd, "--seed_everything") == seed and arg(cmd, "--data.seed") == seed
        assert arg(cmd, "--data.fold") == fold and arg(cmd, "--run_dir") == str(out / name)
        assert "--ckpt_path" not in cmd
    assert agg["n_runs"] == 15 and agg["n_folds"] == 5 and agg["seeds"] == [0, 1, 2] and agg["complete"]
    assert sorted((f["fold"], f["seed"]) for f in agg["folds"]) == [(k, s) for k in range(1, 6) for s in range(3)]


def test_seeds_with_the_speaker_swap_and_the_aggregate_lists_missing_runs(tmp_path):
    fit = FakeFit(fail={"fold2-swap-seed1"})
    agg = run_crossval(CFG, tmp_path, 10, launch=fit, seeds=2, only=[2], share=False)
    assert fit.trained == ["fold2", "fold2-swap", "fold2-seed1", "fold2-swap-seed1"]
    assert arg(fit.commands["fold2-swap-seed1"], "--data.swap_speakers") == "true"
    assert "fold2-swap-seed1" in agg["missing_folds"] and "fold5-seed1" in agg["missing_folds"]
    assert agg["n_runs"] == 3 and len(agg["missing_folds"]) == 20 - 3
    shared = FakeFit()
    agg = run_crossval(CFG, tmp_path / "shared", 10, launch=shared, seeds=2, only=[2])
    assert shared.trained == ["fold2", "fold2-seed1"] and shared.served == ["fold2-swap", "fold2-swap-seed1"]
    assert arg(shared.commands["fold2-seed1"], "--swap_run_dir") == str(tmp_path / "shared" / "fold2-swap-seed1")
    assert agg["n_runs"] == 4 and sorted(f["seed"] for f in agg["folds"]) == [0, 0, 1, 1]


def test_seed_and_resume_arguments_are_the_runners_and_bad_seed_counts_are_refused(tmp_path):
    for reserved in ("--seed_everything", "--data.seed", "--ckpt_path"):
        with pytest.raises(SystemExit, match=reserved):
            run_crossval(CFG, tmp_path / "cv", 5, [reserved, "1"], launch=FakeFit())
    with pytest.raises(ValueError, match="--seeds 0"):
        run_crossval(CFG, tmp_path / "cv", 5, launch=FakeFit(), seeds=0)


def test_the_cv_command_passes_seeds(tmp_path, monkeypatch):
    fit = FakeFit()
    monkeypatch.setattr(crossval, "launch_fold", lambda cmd, log, echo=False: fit(cmd, log))
    main(["cv", "--config", CFG[0], "--out", str(tmp_path), "--seeds", "2", "--only", "4"])
    assert fit.trained == ["fold4", "fold4-seed1"]
    with pytest.raises(SystemExit):
        main(["cv", "--config", CFG[0], "--out", str(tmp_path), "--seeds", "0"])


def test_tables_and_make_pass_seeds(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(tables, "run_crossval", lambda *a, **kw: ran.append(kw) or {"resolved_config": {}})
    s = tables.Setup("quick", EXPERIMENTS / "profiles" / "quick.yaml", EXPERIMENTS, tmp_path / "runs", seeds=3)
    tables.run_row(tables.TABLE1[0], s)
    assert ran[0]["seeds"] == 3
    dry = subprocess.run(["make", "-n", "--always-make", "table1", "SEEDS=3"], cwd=REPO, capture_output=True, text=True)
    assert "ser_fcn table1" in dry.stdout and "--seeds 3" in dry.stdout, dry.stdout + dry.stderr


# --- an ensemble of the seeds ------------------------------------------------------------------


def write_posteriors(run_dir: Path, fold: int, labels: list[int], probs: list[list[float]], order=None) -> None:
    """A run's results.json whose confusion matrix and posteriors agree, its utterances in `order`."""
    order = order or list(range(len(labels)))
    cm = [[0] * len(CLASSES) for _ in CLASSES]
    for y, p in zip(labels, probs):
        cm[y][max(range(len(p)), key=p.__getitem__)] += 1
    r = write_results(run_dir, fold, cm)
    r["posteriors"] = {"utterance_ids": [f"u{i}" for i in order], "labels": [labels[i] for i in order],
                       "probs": [probs[i] for i in order]}
    (run_dir / "results.json").write_text(json.dumps(r))


def test_the_ensemble_scores_each_fold_on_its_seeds_averaged_posteriors(tmp_path):
    labels = [0, 0, 1, 1, 2, 3]
    # seed 0 is wrong on u1 and seed 1 on u4, each less sure than the other is right: the mean
    # is right on both; on u3 both lean to class 0 and so does the mean
    seed0 = [[.9, .1, 0, 0], [.1, .9, 0, 0], [0, 1, 0, 0], [.6, .4, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    seed1 = [[.6, .4, 0, 0], [.95, .05, 0, 0], [.2, .8, 0, 0], [.7, .3, 0, 0], [0, 0, .5, .5001], [0, 0, 0, 1]]
    for k in (1, 2):  # fold 2: the same runs, each file's utterances in another order
        order = None if k == 1 else [5, 3, 1, 0, 2, 4]
        write_posteriors(tmp_path / f"fold{k}", k, labels, seed0, order)
        write_posteriors(tmp_path / f"fold{k}-seed1", k, labels, seed1, order[::-1] if order else None)
    names = ["fold1", "fold2", "fold1-seed1", "fold2-seed1"]
    single = aggregate(tmp_path, names)
    ens = aggregate(tmp_path, names, ensemble=True)
    mean = [[(a + b) / 2 for a, b in zip(r0, r1)] for r0, r1 in zip(seed0, seed1)]
    predicted = [max(range(4), key=row.__getitem__) for row in mean]  # 0, 0, 1, 0, 2, 3
    expected_cm = [[sum(1 for y, p in zip(labels, predicted) if (y, p) == (i, j)) for j in range(4)] for i in range(4)]
    assert single["n_runs"] == 4 and ens["n_runs"] == 2 and ens["seeds"] == [0, 1] and ens["ensemble"]
    for entry in ens["folds"]:  # the files' utterance order does not change the answer
        assert entry["confusion_matrix"] == expected_cm and entry["seeds"] == [0, 1]
        assert entry["name"] in ("fold1", "fold2") and entry["ua"] == pytest.approx((1 + .5 + 1 + 1) / 4)
    assert ens["ua"]["mean"] != single["ua"]["mean"]
    assert "2 folds, each the ensemble of seeds [0, 1]" in summary_line(ens)


def test_an_ensemble_of_identical_seeds_is_the_single_run_and_bad_inputs_name_the_file(tmp_path):
    labels, probs = [0, 1, 2, 3, 1], [[.7, .3, 0, 0], [.5, .2, .3, 0], [0, 0, .9, .1], [.1, 0, 0, .9], [0, .6, .4, 0]]
    for name in ("fold1", "fold1-seed1", "fold1-seed2"):
        write_posteriors(tmp_path / name, 1, labels, probs)
    ens = aggregate(tmp_path, ["fold1", "fold1-seed1", "fold1-seed2"], ensemble=True)
    assert ens["folds"][0]["ua"] == pytest.approx(aggregate(tmp_path, ["fold1"])["ua"]["mean"])
    write_posteriors(tmp_path / "fold1-seed2", 1, labels[:4], probs[:4])  # one utterance fewer
    with pytest.raises(ValueError, match="fold1-seed2.*differ"):
        aggregate(tmp_path, ["fold1", "fold1-seed2"], ensemble=True)
    write_results(tmp_path / "fold1-seed1", 1, CMS[1])  # written before posteriors were recorded
    with pytest.raises(ValueError, match="fold1-seed1.*no test posteriors"):
        aggregate(tmp_path, ["fold1", "fold1-seed1"], ensemble=True)


def test_cv_ensemble_writes_the_ensembles_aggregate(tmp_path):
    labels, probs = [0, 1, 2, 3], [[.7, .3, 0, 0], [.5, .2, .3, 0], [0, 0, .9, .1], [.1, 0, 0, .9]]

    def fit(cmd, log):
        write_posteriors(Path(arg(cmd, "--run_dir")), int(arg(cmd, "--data.fold")), labels, probs)
        return 0

    agg = run_crossval(CFG, tmp_path, 5, launch=fit, seeds=2, share=False, ensemble=True)
    on_disk = json.loads((tmp_path / "aggregate.json").read_text())
    assert agg["ensemble"] and on_disk["n_runs"] == 5 and on_disk["complete"]
    assert sorted(f["name"] for f in on_disk["folds"]) == [f"fold{k}" for k in range(1, 6)]
    assert all(f["seeds"] == [0, 1] and f["ua"] == pytest.approx(.75) for f in on_disk["folds"])


# --- resume from last.ckpt ---------------------------------------------------------------------


def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "cv"
    run_crossval(CFG, out, 5, launch=FakeFit(), seeds=2)
    half = out / "fold2-seed1"  # killed mid-training: last.ckpt, config.yaml, no results.json
    (half / "results.json").unlink()
    (half / "cv_fold.json").unlink()
    (half / "checkpoints").mkdir()
    (half / "checkpoints" / "last.ckpt").write_bytes(b"state of epoch 3")
    (half / "config.yaml").write_text("seed_everything: 1\n")
    scratch = out / "fold3"  # killed before any checkpoint: cleared and retrained
    (scratch / "results.json").unlink()
    (scratch / "stale.txt").write_text("half a log")
    done = (out / "fold2" / "results.json").stat().st_mtime_ns

    fit = FakeFit()
    assert run_crossval(CFG, out, 5, launch=fit, seeds=2)["complete"]
    assert fit.trained == ["fold3", "fold2-seed1"]
    resumed = fit.commands["fold2-seed1"]
    assert arg(resumed, "--ckpt_path") == str(half / "checkpoints" / "last.ckpt")
    assert arg(resumed, "--run_dir") == str(half) and arg(resumed, "--seed_everything") == "1"
    assert fit.found["fold2-seed1"] == ["checkpoints/last.ckpt", "config.yaml"]  # kept for the fit
    assert "--ckpt_path" not in fit.commands["fold3"] and fit.found["fold3"] == []  # cleared first
    assert (out / "fold2" / "results.json").stat().st_mtime_ns == done  # the same fold's seed 0 untouched


def test_every_json_of_the_runner_is_written_atomically(tmp_path, monkeypatch):
    written = []
    real = atomic.write_json
    monkeypatch.setattr(atomic, "write_json", lambda path, obj, **kw: written.append(Path(path).name) or real(path, obj, **kw))
    real_dump = json.dump
    monkeypatch.setattr(json, "dump", lambda *a, **kw: pytest.fail("json.dump: not atomic") or real_dump(*a, **kw))
    run_crossval(CFG, tmp_path, 5, launch=FakeFit(), only=[1])
    assert sorted(set(written)) == ["aggregate.json", "cv.json", "cv_fold.json"]


# --- intervals and paired tests ------------------------------------------------------------------


def test_the_interval_is_scipys_t_interval_of_the_same_values(tmp_path):
    values = [0.52, 0.61, 0.58, 0.49, 0.66, 0.55, 0.63]
    expected = scipy_stats.t.interval(0.95, len(values) - 1, loc=sum(values) / len(values),
                                      scale=scipy_stats.sem(values))
    assert mean_ci(values)["ci"] == pytest.approx(list(expected), rel=1e-12)
    assert mean_ci([0.5])["ci"] is None and mean_ci([])["mean"] is None
    assert mean_ci([0.5, 0.5])["ci"] == [0.5, 0.5]

    run_crossval(CFG, tmp_path, 5, launch=FakeFit(), seeds=2)
    agg = json.loads((tmp_path / "aggregate.json").read_text())
    for key in ("wa", "ua"):
        runs = [f[key] for f in agg["folds"]]
        assert len(runs) == 10
        low, high = scipy_stats.t.interval(0.95, 9, loc=sum(runs) / 10, scale=scipy_stats.sem(runs))
        assert agg[key]["ci"] == pytest.approx([low, high], rel=1e-12)


def test_per_class_recall_is_averaged_over_runs_where_the_class_is_present(tmp_path):
    write_results(tmp_path / "fold1", 1, [[3, 1], [1, 1]], classes=["a", "b"])
    write_results(tmp_path / "fold2", 2, [[1, 1], [0, 0]], classes=["a", "b"])  # no "b" reference
    agg = aggregate(tmp_path, ["fold1", "fold2"])
    assert agg["recall"] == pytest.approx([(0.75 + 0.5) / 2, 0.5])
    assert agg["confusion_matrix"] == [[4, 2], [1, 1]]


def runs_of(ua_by_key: dict) -> list[dict]:
    return [{"fold": fold, "swap_speakers": swap, "seed": seed, "ua": ua} for (fold, swap, seed), ua in ua_by_key.items()]


KEYS = [(fold, False, seed) for seed in range(3) for fold in range(1, 6)]


def test_the_paired_test_pairs_by_fold_and_seed_not_by_order():
    rng = random.Random(7)
    reference = {k: 0.5 + rng.uniform(-0.1, 0.1) for k in KEYS}
    row = {k: reference[k] + rng.uniform(-0.02, 0.08) for k in KEYS}
    expected = scipy_stats.wilcoxon([row[k] - reference[k] for k in KEYS]).pvalue
    shuffled = runs_of(reference)
    rng.shuffle(shuffled)
    result = paired_wilcoxon(runs_of(row), shuffled)
    assert result["p"] == pytest.approx(expected) and result["n_pairs"] == 15 and result["unpaired"] == []
    by_order = scipy_stats.wilcoxon([a["ua"] - b["ua"] for a, b in zip(runs_of(row), shuffled)]).pvalue
    assert by_order != pytest.approx(expected)  # the shuffle would matter if pairs were taken by order

    without = runs_of({k: v for k, v in reference.items() if k != (3, False, 1)})
    result = paired_wilcoxon(runs_of(row), without)
    assert result["n_pairs"] == 14 and result["unpaired"] == ["fold3 seed 1"]
    assert result["p"] == pytest.approx(scipy_stats.wilcoxon([row[k] - reference[k] for k in KEYS if k != (3, False, 1)]).pvalue)
    with pytest.raises(ValueError, match="two runs"):
        paired_wilcoxon(runs_of(row) + runs_of(row)[:1], shuffled)
    assert paired_wilcoxon(runs_of(row), runs_of(row))["p"] == 1.0


def test_five_pairs_cannot_reach_significance():
    five = {k: 0.5 for k in KEYS[:5]}
    better = paired_wilcoxon(runs_of({k: v + 0.1 * (1 + k[0]) for k, v in five.items()}), runs_of(five))
    assert better["p"] == pytest.approx(0.0625) == pytest.approx(smallest_p(5))


def _seeded_agg(tmp_path: Path, name: str, shift: float) -> dict:
    """An aggregate of 5 folds x 3 seeds whose UA is `shift` above a common base on every run."""
    runs = []
    for fold, swap, seed in KEYS:
        base = 0.4 + 0.03 * fold + 0.01 * seed
        runs.append({"name": f"fold{fold}" + (f"-seed{seed}" if seed else ""), "fold": fold, "swap_speakers": swap,
                     "seed": seed, "wa": base + shift, "ua": base + shift + 0.001 * fold * seed, "predicted": ["neu", "hap"],
                     "n_utterances": 10})
    agg = {"experiment": name, "n_runs": 15, "n_folds": 5, "complete": True, "folds": runs,
           "wa": mean_ci([r["wa"] for r in runs]), "ua": mean_ci([r["ua"] for r in runs]),
           "classes": ["neu", "hap"], "recall": [0.75, 0.5], "confusion_matrix": [[3, 1], [1, 1]],
           "devices": ["CPU: Test"], "wall_s": 1.0, "corpus": ["demo"], "merge_exc": [False],
           "resolved_config": {"data": {"demo_utterances_per_speaker": 16}}}
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "aggregate.json").write_text(json.dumps(agg))
    return agg


def test_table2_tests_each_row_against_the_fcn_row_that_ran_and_marks_significance(tmp_path):
    fcn = _seeded_agg(tmp_path, "fcn_attn_random", 0.05)
    meanpool = _seeded_agg(tmp_path, "fcn_meanpool", 0.0)
    outcomes = [tables.Outcome(tables.TABLE2[0], note=tables.OFFLINE),  # the ImageNet row did not run
                tables.Outcome(tables.TABLE2[1], agg=fcn, init="random"),
                *(tables.Outcome(r, note="not reproduced here") for r in tables.TABLE2[2:]),
                tables.Outcome(tables.MEANPOOL, agg=meanpool, init="random")]
    md = tables.render_table(2, outcomes, "quick", None, folds=5, seeds=3)
    rows = main_rows(md)
    p = paired_wilcoxon(meanpool["folds"], fcn["folds"])["p"]
    assert p < 0.05
    ci = meanpool["ua"]["ci"]
    assert f"{100 * meanpool['ua']['mean']:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] \\* [^p1]" in rows[-1]
    assert "(reference of the tests)" in rows[1]
    assert f"[^p1]: vs {tables.TABLE2[1].system}: UA -5.0 points" in md and f"p = {p:.4g}" in md
    assert "15 (fold, seed) pairs" in md and "Wilcoxon" in md and "0.0625" in md and "5 folds x 3 seed(s) = 15 runs" in md
    assert "| System | neu | hap |" in md and "`neu 3 1 · hap 1 1`" in md


def test_table1_compares_with_the_fcn_aggregate_of_its_runs_folder_else_its_best_row(tmp_path):
    alex, vgg = _seeded_agg(tmp_path, "alexnet_random", 0.0), _seeded_agg(tmp_path, "vgg16_random", 0.01)
    outcomes = [tables.Outcome(tables.TABLE1[0], agg=alex, init="random"),
                tables.Outcome(tables.TABLE1[2], agg=vgg, init="random")]
    reference, why = tables.choose_reference(1, outcomes, tmp_path)
    assert reference is outcomes[1] and "best row by mean UA" in why
    _seeded_agg(tmp_path, "fcn_attn", 0.1)
    reference, why = tables.choose_reference(1, outcomes, tmp_path)
    assert reference.row.experiment == "fcn_attn" and "fcn_attn/aggregate.json" in why
    md = tables.render_table(1, outcomes, "quick", None, seeds=3, paired=table_markdown.paired_tests(outcomes, reference, why))
    assert md.count("[^p") == 4  # both rows tested, each with its footnote
    assert "against **Our FCN+Attention (fcn_attn, Table II)**" in md


def test_an_aggregate_written_before_seeds_is_aggregated_again(tmp_path):
    for k in range(1, 6):
        write_results(tmp_path / "alexnet_random" / f"fold{k}", k, CMS[1 + k % 3])
    old = {"experiment": "alexnet_random", "n_folds": 5, "folds": [{"name": f"fold{k}"} for k in range(1, 6)],
           "missing_folds": []}
    (tmp_path / "alexnet_random" / "aggregate.json").write_text(json.dumps(old))
    outcome = tables.load_outcome(tables.TABLE1[0], tmp_path)
    assert outcome.agg["n_runs"] == 5 and outcome.agg["ua"]["ci"] is not None
