"""The LightningModule and the CLI: fit, test, results.json, W&B offline, errors, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from ser_fcn.cli import run_cli
from ser_fcn.models import FCNAttention
from ser_fcn.training.metrics import UtterancePosteriors
from ser_fcn.training.module import SERModule

from helpers import REPO, fit_args


def tiny_args(root, run_dir, *extra):
    return fit_args(root, run_dir, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", *extra)


@pytest.fixture(scope="module")
def fitted(demo_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "fit"
    cli = run_cli(["fit", *tiny_args(demo_corpus.root, run_dir)])
    return cli, run_dir


def test_fit_writes_checkpoint_results_config_and_an_offline_wandb_run(fitted):
    cli, run_dir = fitted
    results = json.loads((run_dir / "results.json").read_text())
    assert results["fold"] == 1 and results["config"] == "fcn_attn_random"
    assert results["classes"] == ["neu", "hap", "sad", "ang"]
    cm = torch.tensor(results["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == results["n_utterances"] == len(cli.datamodule.split.test)
    assert results["wa"] == pytest.approx(float(cm.diag().sum() / cm.sum()), abs=1e-6)
    y_true = [t for t in range(4) for p in range(4) for _ in range(int(cm[t, p]))]
    y_pred = [p for t in range(4) for p in range(4) for _ in range(int(cm[t, p]))]
    assert results["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-6)
    assert set(results["recall_per_class"]) == {c for i, c in enumerate(results["classes"]) if cm[i].sum()}
    post = results["posteriors"]  # every test utterance once, and its posteriors give the confusion matrix
    ds = cli.datamodule.datasets["test"]
    truth = {ds.rows[i].utterance_id: results["classes"].index(ds.rows[i].label) for i in ds.indices}
    assert sorted(post["utterance_ids"]) == sorted(truth) and [truth[u] for u in post["utterance_ids"]] == post["labels"]
    probs = torch.tensor(post["probs"])
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-4)
    labels = torch.tensor(post["labels"])
    assert torch.equal(torch.bincount(labels * 4 + probs.argmax(1), minlength=16).view(4, 4), cm)
    assert Path(results["ckpt_path"]).is_file() and Path(results["ckpt_path"]).parent == run_dir / "checkpoints"
    assert (run_dir / "config.yaml").is_file()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert b"lam" in b"".join(p.read_bytes() for p in offline[0].glob("*.wandb"))  # the resolved config was logged


def test_num_classes_is_linked_from_the_data(fitted):
    cli, _ = fitted
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes == 4
    assert cli.model.net.head.classifier[-1].out_features == 4 if hasattr(cli.model.net, "head") else True
    assert cli.model(torch.zeros(1, 1, 200, 100), torch.tensor([100]))[0].shape == (1, 4)


def test_test_subcommand_reproduces_the_printed_figures(fitted, tmp_path, demo_corpus):
    cli, run_dir = fitted
    before = json.loads((run_dir / "results.json").read_text())
    again = run_cli(["test", *tiny_args(demo_corpus.root, tmp_path / "t"), "--ckpt_path", before["ckpt_path"]])
    after = json.loads((tmp_path / "t" / "results.json").read_text())
    assert after["wa"] == before["wa"] and after["ua"] == before["ua"]
    assert after["confusion_matrix"] == before["confusion_matrix"] and after["posteriors"] == before["posteriors"]
    # the training statistics travelled inside the checkpoint
    assert torch.equal(again.model.feature_mean, cli.model.feature_mean)


def test_print_config_shows_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(["fit", "--config", str(REPO / "experiments" / "fcn_attn.yaml"), "--print_config"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "ser_fcn.models.FCNAttention" in out and "lam: 0.3" in out and "monitor: val/ua" in out


@pytest.mark.parametrize(
    "args, named",
    [
        (["--model.net.init_args.no_such_key", "1"], "no_such_key"),
        (["--data.not_a_key", "1"], "not_a_key"),
        (["--model.net.init_args.encoder", "resnet9000"], "resnet9000"),
    ],
)
def test_bad_config_fails_before_training_and_names_it(args, named, capsys, tmp_path):
    with pytest.raises((SystemExit, ValueError)) as e:
        run_cli(["fit", "--config", str(REPO / "experiments" / "fcn_attn.yaml"), "--run_dir", str(tmp_path / "r"), *args])
    assert named in (str(e.value) + capsys.readouterr().err)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_missing_weights_file_fails_before_training(tmp_path, capsys):
    missing = tmp_path / "alexnet.pth"
    with pytest.raises((SystemExit, FileNotFoundError)) as e:
        run_cli(["fit", "--config", str(REPO / "experiments" / "fcn_attn.yaml"), "--run_dir", str(tmp_path / "r"),
                 "--model.net.init_args.weights", str(missing)])
    assert str(missing) in (str(e.value) + capsys.readouterr().err)


def test_nan_in_a_batch_stops_training_naming_the_utterance():
    module = SERModule(FCNAttention(num_classes=4))
    x = torch.randn(2, 1, 200, 120)
    x[1, 0, 5, 7] = float("nan")
    batch = {"x": x, "lengths": torch.tensor([120, 120]), "y": torch.tensor([0, 1]), "ids": ["good_utt", "bad_utt"], "utt_index": torch.tensor([0, 1])}
    with pytest.raises(FloatingPointError, match="bad_utt") as e:
        module.training_step(batch, 0)
    assert "good_utt" not in str(e.value)


def test_silent_utterance_gives_a_finite_loss():
    module = SERModule(FCNAttention(num_classes=4))
    silent = torch.full((1, 1, 200, 150), float(torch.log(torch.tensor(1e-6))))
    batch = {"x": silent, "lengths": torch.tensor([150]), "y": torch.tensor([2]), "ids": ["silent"], "utt_index": torch.tensor([0])}
    assert torch.isfinite(module.training_step(batch, 0))


def test_segment_posteriors_are_averaged_per_utterance():
    m = UtterancePosteriors()
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.6, 0.4]])
    m.update(torch.tensor([3, 3, 3, 7]), probs, torch.tensor([1, 1, 1, 0]))
    ids, mean, target = m.compute()
    assert ids.tolist() == [3, 7] and target.tolist() == [1, 0]
    assert torch.allclose(mean, torch.stack([probs[:3].mean(0), probs[3]]))


@pytest.mark.slow  # a subprocess-heavy end-to-end run: `make test-slow` (CI runs it)
def test_two_process_ddp_fit_runs_to_the_end(demo_corpus, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ser_fcn", "fit", *tiny_args(demo_corpus.root, run_dir),
           "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2",
           "--trainer.limit_train_batches", "2", "--swap_run_dir", str(tmp_path / "ddp-swap")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # metrics are gathered across ranks: every test utterance counted once, in the fold and in its
    # swap, which the same training run served (both validation sets split across the ranks)
    for folder, speaker in ((run_dir, "1M"), (tmp_path / "ddp-swap", "1F")):
        results = json.loads((folder / "results.json").read_text())
        assert sum(map(sum, results["confusion_matrix"])) == results["n_utterances"] and results["test_speaker"] == speaker
        assert results["n_utterances"] == sum(1 for u in demo_corpus.utterances if u["speaker"] == speaker and u["improvised"] and u["label"] in ("neu", "hap", "sad", "ang"))
        assert all("val_swap/ua" in h and "val/ua" in h for h in results["history"])
        assert len(set(results["posteriors"]["utterance_ids"])) == results["n_utterances"]  # gathered from both ranks
    assert len(list(run_dir.glob("config.yaml"))) == 1 and not list(tmp_path.glob("runs"))


def test_history_holds_each_epochs_training_figures_as_logged(demo_corpus, tmp_path):
    """results.json's per-epoch history carries train/loss and train/wa beside the validation
    figures, equal to what the logger got for that epoch (so underfitting can be read there)."""
    import csv

    run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "run", "--trainer.max_epochs", "2",
                              "--trainer.limit_train_batches", "2", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                              "--trainer.logger.init_args.save_dir", str(tmp_path / "csv"))])
    history = json.loads((tmp_path / "run" / "results.json").read_text())["history"]
    rows = list(csv.DictReader(next((tmp_path / "csv").rglob("metrics.csv")).open()))
    logged = {int(r["epoch"]): (float(r["train/loss_epoch"]), float(r["train/wa"])) for r in rows if r.get("train/wa")}
    assert [h["epoch"] for h in history] == [0, 1] and sorted(logged) == [0, 1]
    for h in history:
        assert "val/ua" in h
        assert (h["train/loss"], h["train/wa"]) == pytest.approx(logged[h["epoch"]], abs=1e-6)
    assert history[0]["train/loss"] != history[1]["train/loss"]  # per epoch, not one figure repeated
