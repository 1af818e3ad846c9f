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
