"""One training run serves fold k and fold k-swap (`fit --swap_run_dir`, what `cv` does by default).

The two folds train on the same speakers with the same seed; only the speaker that picks the best
epoch and the one tested differ. So the shared run must give exactly what two runs give.
"""

import csv
import json

import pytest
import yaml

from ser_fcn.cli import run_cli
from ser_fcn.data.datamodule import SERDataModule
from ser_fcn.utils.errors import ConfigError

from helpers import fit_args

SAME = ("wa", "ua", "confusion_matrix", "n_utterances", "val_speaker", "test_speaker", "swap_speakers", "fold")


def _fit(root, run_dir, *extra):
    # SpecAugment and dropout draw from the global RNG during training: a second validation set
    # that drew from it too would change the training run
    args = fit_args(root, run_dir, "--trainer.logger", "false", "--trainer.max_epochs", "3",
                    "--trainer.limit_train_batches", "3", "--data.fold", "2",
                    "--model.augment", "ser_fcn.training.augment.SpecAugment", *extra)
    return run_cli(["fit", *args])


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _val_history(results) -> tuple[list, list]:
    """(epoch, key) of every validation and training figure of the history, and their values."""
    items = sorted((e["epoch"], k, v) for e in results["history"] for k, v in e.items() if k.split("/")[0] in ("val", "train"))
    return [i[:2] for i in items], [i[2] for i in items]


@pytest.fixture(scope="module")
def three_runs(demo_corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("shared")
    _fit(demo_corpus.root, base / "shared", "--swap_run_dir", str(base / "shared-swap"),
         "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(base / "csv"))
    _fit(demo_corpus.root, base / "alone")
    _fit(demo_corpus.root, base / "alone-swap", "--data.swap_speakers", "true")
    return demo_corpus, base


@pytest.mark.parametrize("shared, alone", [("shared", "alone"), ("shared-swap", "alone-swap")])
def test_the_shared_run_gives_each_fold_what_its_own_run_gives(three_runs, shared, alone):
    _, base = three_runs
    a, b = _results(base / shared), _results(base / alone)
    assert {k: a[k] for k in SAME} == {k: b[k] for k in SAME}
    (keys_a, values_a), (keys_b, values_b) = _val_history(a), _val_history(b)
    assert keys_a == keys_b and len({e for e, _ in keys_a}) == 3
    assert values_a == pytest.approx(values_b, abs=1e-6)  # every epoch, training loss included


def test_each_fold_keeps_its_own_best_epoch_and_the_other_speakers_curve(three_runs):
    _, base = three_runs
    fold, swap, alone_swap = _results(base / "shared"), _results(base / "shared-swap"), _results(base / "alone-swap")
    assert (fold["swap_speakers"], swap["swap_speakers"]) == (False, True)
    assert (swap["val_speaker"], swap["test_speaker"]) == (fold["test_speaker"], fold["val_speaker"])
    # fold k logs the other speaker as val_swap/*: the swapped fold's own validation curve
    assert [e["val_swap/ua"] for e in fold["history"]] == pytest.approx([e["val/ua"] for e in alone_swap["history"]], abs=1e-6)
    for run_dir, results in ((base / "shared", fold), (base / "shared-swap", swap)):
        ua = [e["val/ua"] for e in results["history"]]
        ckpt = results["ckpt_path"]
        assert ckpt.startswith(str(run_dir / "checkpoints")) and f"epoch{ua.index(max(ua)):02d}" in ckpt


def test_the_runs_logger_gets_the_test_of_its_own_fold_only(three_runs):
    _, base = three_runs
    rows = [r for f in (base / "csv").rglob("metrics.csv") for r in csv.DictReader(f.open())]
    logged = [float(r["test/ua"]) for r in rows if r.get("test/ua")]
    assert logged == pytest.approx([_results(base / "shared")["ua"]])
    assert any(r.get("val_swap/ua") for r in rows)  # the other speaker's validation is logged every epoch


def test_the_swapped_folds_config_reproduces_its_test(three_runs, tmp_path):
    corpus, base = three_runs
    saved = yaml.safe_load((base / "shared-swap" / "config.yaml").read_text())
    assert saved["data"]["swap_speakers"] is True and saved["data"]["validate_both"] is False
    swap = _results(base / "shared-swap")
    cli = run_cli(["test", "--config", str(base / "shared-swap" / "config.yaml"), "--ckpt_path", swap["ckpt_path"],
                   "--trainer.logger", "false", "--run_dir", str(tmp_path / "t")])
    assert cli.model.test_results["ua"] == pytest.approx(swap["ua"], abs=1e-6)
    assert cli.model.test_results["confusion_matrix"] == swap["confusion_matrix"]


def test_validate_both_gives_two_sets_and_exchanging_swaps_them(demo_corpus, tmp_path):
    dm = SERDataModule(root=str(demo_corpus.root), fold=3, validate_both=True, progress=False, cache_dir=str(tmp_path))
    dm.setup("fit")
    val, other = dm.val_dataloader()
    ids = lambda loader: sorted(i for batch in loader for i in batch["ids"])  # noqa: E731
    assert ids(val) == sorted(dm.datasets["val"].utterance_ids) and ids(other) == sorted(dm.datasets["test"].utterance_ids)
    assert other.generator is not None and val.generator is None  # only the extra set keeps off the global RNG
    speakers, test_ids = (dm.split.val_speaker, dm.split.test_speaker), ids(dm.test_dataloader())
    assert not dm.speakers_swapped
    dm.exchange_held_out()
    assert (dm.split.test_speaker, dm.split.val_speaker) == speakers and dm.speakers_swapped
    assert ids(dm.val_dataloader()[0]) == test_ids
    dm.exchange_held_out()
    assert (dm.split.val_speaker, dm.split.test_speaker) == speakers and ids(dm.test_dataloader()) == test_ids


def test_swap_run_dir_outside_fit_or_on_the_run_folder_is_refused(demo_corpus, tmp_path):
    with pytest.raises(ConfigError, match="--swap_run_dir is for fit"):
        run_cli(["validate", *fit_args(demo_corpus.root, tmp_path / "v", "--swap_run_dir", str(tmp_path / "s"))])
    with pytest.raises(ConfigError, match="the run folder itself"):
        run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "f", "--swap_run_dir", str(tmp_path / "f"))])


def test_emobox_folds_cannot_validate_on_both(tmp_path):
    with pytest.raises(ConfigError, match="validate_both"):
        SERDataModule(emobox=str(tmp_path), audio_root=str(tmp_path), validate_both=True)


def test_last_ckpt_holds_the_swapped_folds_best_after_the_epoch_and_resumes(demo_corpus, tmp_path):
    """last.ckpt (written every epoch) keeps the swapped fold's checkpoint state as it is after
    that epoch. Epoch 0 is always a new best: had last.ckpt been written before the swap
    checkpoint saved it, a run resumed from it would test a checkpoint that no longer exists."""
    import torch

    run, swap = tmp_path / "run", tmp_path / "run-swap"
    _fit(demo_corpus.root, run, "--swap_run_dir", str(swap), "--trainer.max_epochs", "1")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = next(v for k, v in ckpt["callbacks"].items() if "'monitor': 'val_swap/ua'" in k)
    history = ckpt["ser_fcn_history"]
    assert len(history) == 1
    assert state["best_model_score"] == pytest.approx(history[0]["val_swap/ua"])
    assert (swap / "checkpoints").samefile(state["dirpath"])
    best = state["best_model_path"]
    assert best and (swap / "checkpoints" / best.rsplit("/", 1)[-1]).is_file()
    # resumed for a second epoch, both folds are tested from checkpoints that exist
    _fit(demo_corpus.root, run, "--swap_run_dir", str(swap), "--trainer.max_epochs", "2",
         "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))
    assert len(_results(run)["history"]) == 2 and len(_results(swap)["history"]) == 2
