"""The recipe ablation reads validation UA only: the best epoch's, per fold, per setting."""

import json

import pytest

from ser_fcn.study import ablation


def _fold(folder, name, val_uas, test_ua=0.99):
    run = folder / name
    run.mkdir(parents=True)
    history = [{"epoch": e, "val/ua": ua, "val/wa": ua} for e, ua in enumerate(val_uas)]
    (run / "results.json").write_text(json.dumps({"ua": test_ua, "wa": test_ua, "history": history}))


def test_each_fold_counts_its_best_validation_epoch_never_test(tmp_path):
    base, new = tmp_path / "base", tmp_path / "new"
    _fold(base, "fold1", [0.2, 0.5, 0.4])
    _fold(base, "fold3", [0.3, 0.3, 0.6])
    _fold(new, "fold1", [0.6, 0.7, 0.7], test_ua=0.01)
    _fold(new, "fold3", [0.5, 0.8, 0.1], test_ua=0.01)
    assert ablation.read_setting(base) == {"fold1": (0.5, 1), "fold3": (0.6, 2)}
    assert ablation.read_setting(new)["fold1"] == (0.7, 1)  # a tie keeps the first epoch, as ModelCheckpoint
    md = ablation.render([("base", base), ("new", new)])
    lines = md.splitlines()
    assert lines[2].startswith("| base | 50.0 (epoch 1) | 60.0 (epoch 2) | 55.0 |")
    assert lines[3].startswith("| new | 70.0 (epoch 1) | 80.0 (epoch 1) | 75.0 | +20.0 |")
    assert "99" not in md and "1.0" not in md  # test UA never shows


def test_a_setting_missing_a_fold_has_no_mean(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _fold(a, "fold1", [0.5])
    _fold(a, "fold3", [0.5])
    _fold(b, "fold1", [0.9])
    line = ablation.render([("a", a), ("b", b)]).splitlines()[3]
    assert "not run" in line and line.rstrip().endswith("|  |  |")


def test_a_missing_folder_is_one_error_line(tmp_path, capsys):
    from ser_fcn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["ablation", f"x={tmp_path / 'nope'}"])
    assert str(e.value).startswith("error:") and "nope" in str(e.value)  # cli.main's one line


def test_a_fold_still_training_is_read_from_last_ckpt_and_has_no_mean(tmp_path):
    import torch

    a = tmp_path / "a"
    _fold(a, "fold1", [0.5, 0.6])
    run = a / "fold3" / "checkpoints"
    run.mkdir(parents=True)
    torch.save({"ser_fcn_history": [{"epoch": 0, "val/ua": 0.3}, {"epoch": 1, "val/ua": 0.4}, {"epoch": 2, "val/ua": 0.35}]},
               run / "last.ckpt")
    assert ablation.read_setting(a) == {"fold1": (0.6, 1), "fold3": (0.4, 1, 3)}
    line = ablation.render([("a", a)]).splitlines()[2]
    assert "40.0 (epoch 1), unfinished: 3 epochs so far" in line and line.rstrip().endswith("|  |  |")


def test_change_against_a_named_line(tmp_path, capsys):
    from ser_fcn.cli import main

    for name, ua in [("recipe", 0.6), ("less_a", 0.5), ("less_b", 0.65)]:
        _fold(tmp_path / name, "fold1", [ua])
    settings = [("less a", tmp_path / "less_a"), ("recipe", tmp_path / "recipe"), ("less b", tmp_path / "less_b")]
    lines = ablation.render(settings, against="recipe").splitlines()
    assert lines[2].rstrip().endswith("| 50.0 | -10.0 |")  # before the recipe's line, still against it
    assert lines[3].rstrip().endswith("| 60.0 |  |")
    assert lines[4].rstrip().endswith("| 65.0 | +5.0 |")  # against the recipe, not the line above (+15.0)
    assert "against the line 'recipe'" in lines[6]
    with pytest.raises(SystemExit) as e:
        main(["ablation", f"x={tmp_path / 'recipe'}", "--against", "nope"])
    assert str(e.value).startswith("error:") and "'nope'" in str(e.value)


def test_folds_keeps_only_those_columns_so_a_ten_fold_row_sits_beside_two_fold_probes(tmp_path):
    from ser_fcn.cli import main

    table, probe = tmp_path / "table", tmp_path / "probe"
    for k, ua in enumerate([0.5, 0.6, 0.1, 0.1], start=1):  # a table row's folder: four folds
        _fold(table, f"fold{k}", [ua])
    _fold(probe, "fold1", [0.7])
    _fold(probe, "fold2", [0.7])
    assert "not run" in ablation.render([("table", table), ("probe", probe)])  # all four columns: no mean
    lines = ablation.render([("table", table), ("probe", probe)], only=["fold1", "fold2"]).splitlines()
    assert lines[0].startswith("| setting | fold1 val UA | fold2 val UA | mean |")
    assert lines[2].rstrip().endswith("| 55.0 |  |") and lines[3].rstrip().endswith("| 70.0 | +15.0 |")
    with pytest.raises(SystemExit) as e:
        main(["ablation", f"x={probe}", "--folds", "fold1", "fold9"])
    assert str(e.value).startswith("error:") and "fold9" in str(e.value)


def test_a_lines_command_hides_the_corpus_folder(tmp_path):
    """The setting's overrides come from its cv.json; a folder value shows as <DIR>, so a
    committed ablation never holds a path of the machine that trained it."""
    _fold(tmp_path / "s", "fold1", [0.5])
    overrides = ["--data.corpus", "emodb", "--data.root", "/home/someone/EmoDB", "--data.manifest=/x/m.csv",
                 "--trainer.max_epochs", "24"]
    (tmp_path / "s" / "cv.json").write_text(json.dumps({"configs": ["experiments/fcn_attn_random.yaml"],
                                                        "overrides": overrides}))
    md = ablation.render([("s", tmp_path / "s")])
    assert ("`--config experiments/fcn_attn_random.yaml --data.corpus emodb --data.root <DIR> "
            "--data.manifest=<DIR> --trainer.max_epochs 24`") in md
    assert "someone" not in md and "m.csv" not in md


def test_last_n_table_pairs_the_folds_and_tests_them_with_scipy(tmp_path, capsys):
    """--last N: each line's mean of the best epochs and of the last N epochs over the folds
    every line finished, against the reference, with the folds that rose and Wilcoxon's p."""
    from scipy.stats import wilcoxon

    from ser_fcn.cli import main

    base, new = tmp_path / "base", tmp_path / "new"
    histories = {
        "fold1": ([0.2, 0.6, 0.4, 0.4], [0.5, 0.6, 0.6, 0.6]),
        "fold2": ([0.5, 0.3, 0.3, 0.2], [0.4, 0.4, 0.5, 0.5]),
        "fold3": ([0.1, 0.7, 0.5, 0.3], [0.3, 0.4, 0.6, 0.6]),
        "fold4": ([0.3, 0.3, 0.3, 0.3], [0.2, 0.2, 0.2, 0.3]),
    }
    for fold, (b, n) in histories.items():
        _fold(base, fold, b)
        _fold(new, fold, n)
    _fold(new, "fold5", [0.9, 0.9, 0.9, 0.9])  # only one line has it: left out of the pairs
    main(["ablation", f"base={base}", f"new={new}", "--last", "2"])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| new |") and "of 4" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    last = {f: (sum(b[-2:]) / 2, sum(n[-2:]) / 2) for f, (b, n) in histories.items()}
    best = {f: (max(b), max(n)) for f, (b, n) in histories.items()}
    for col, pairs in ((1, best), (5, last)):
        mine = [n for _, n in pairs.values()]
        theirs = [b for b, _ in pairs.values()]
        assert float(cells[col]) == pytest.approx(100 * sum(mine) / 4, abs=0.05)
        assert float(cells[col + 1]) == pytest.approx(100 * (sum(mine) - sum(theirs)) / 4, abs=0.05)
        assert cells[col + 2] == f"{sum(m > t for m, t in zip(mine, theirs))} of 4"
        diffs = [m - t for m, t in zip(mine, theirs)]
        assert float(cells[col + 3]) == pytest.approx(wilcoxon(diffs).pvalue, rel=1e-2)
    assert "Over the 4 folds" in out


def test_last_n_must_be_positive(capsys):
    from ser_fcn.cli import main

    with pytest.raises(SystemExit):
        main(["ablation", "x=y", "--last", "0"])
    assert "--last" in capsys.readouterr().err


def test_seeds_are_columns_of_their_own_paired_with_the_same_seed(tmp_path):
    """cv --seeds N folders: seed 0's folds come first, then seed 1's, each fold before its swap;
    a run is paired with the same fold and seed of the other line, so a setting that changes only
    seed 1's runs shows a change only there."""
    base, new = tmp_path / "base", tmp_path / "new"
    names = ["fold2-swap-seed1", "fold10", "fold1-seed1", "fold2", "fold1-swap", "fold1", "fold2-seed1", "fold2-swap"]
    for i, name in enumerate(names):
        _fold(base, name, [0.1 + 0.05 * i])
        _fold(new, name, [0.1 + 0.05 * i + (0.2 if name.endswith("-seed1") else 0.0)])
    head = ablation.render([("base", base), ("new", new)]).splitlines()[0]
    columns = [c.strip().removesuffix(" val UA") for c in head.strip("|").split("|")][1:-2]
    assert columns == ["fold1", "fold2", "fold10", "fold1-swap", "fold2-swap",
                       "fold1-seed1", "fold2-seed1", "fold2-swap-seed1"]
    best = ablation.finished_runs(new, 1)
    assert {n for n, r in best.items() if r["seed"] == 1} == {"fold1-seed1", "fold2-seed1", "fold2-swap-seed1"}
    md = ablation.render([("base", base), ("new", new)], last=1)
    line = next(x for x in md.splitlines() if x.startswith("| new |") and "of 8" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == f"+{100 * 0.2 * 3 / 8:.1f}" and cells[3] == "3 of 8"  # only the seed-1 runs rose
    assert "Over the 8 runs (fold and seed) every line finished" in md
