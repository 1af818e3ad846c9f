"""EMA: validation, checkpoints and test read the moving average of the weights, not the live ones."""

import pytest
import torch

from ser_fcn.cli import run_cli
from ser_fcn.training import callbacks
from ser_fcn.training.callbacks import EMA

from helpers import fit_args

DECAY = 0.5  # a short horizon, so four steps leave the average far from the live weights


def _args(root, run_dir, *extra):
    """The small run's words: the pooled_norm net (its running statistics are buffers EMA averages)."""
    return fit_args(root, run_dir, "--trainer.logger", "false", "--model.net.init_args.pooled_norm", "true", *extra)


class _RecordingEMA(EMA):
    """EMA that also keeps the live weights after every optimiser step and each epoch's val/loss."""

    steps: list[dict[str, torch.Tensor]] = []
    val_losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        type(self).steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_validation_end(self, trainer, pl_module):
        type(self).val_losses.append(float(trainer.callback_metrics["val/loss"]))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_a_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        EMA(decay)


@pytest.fixture(scope="module")
def ema_fit(demo_corpus, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(callbacks, "EMA", _RecordingEMA)
    _RecordingEMA.steps, _RecordingEMA.val_losses = [], []
    run_dir = tmp_path_factory.mktemp("runs") / "ema"
    args = _args(demo_corpus.root, run_dir, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                 "--trainer.callbacks+", "ser_fcn.training.callbacks.EMA",
                 "--trainer.callbacks.init_args.decay", str(DECAY))
    try:
        cli = run_cli(["fit", *args])  # fit, then test the best checkpoint in the same trainer
    finally:
        mp.undo()
    fit_test_loss = float(cli.trainer.callback_metrics["test/loss"])
    return demo_corpus, run_dir, list(_RecordingEMA.steps), list(_RecordingEMA.val_losses), fit_test_loss


def test_the_checkpoint_holds_the_moving_average_of_every_step(ema_fit):
    """last.ckpt's state_dict is the EMA over the four steps' weights (and PooledNorm's running
    statistics); the live weights travel beside it for resuming."""
    _, run_dir, steps, _, _ = ema_fit
    assert len(steps) == 4  # 2 epochs x 2 training batches
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    expected = {k: v.clone() for k, v in steps[0].items()}  # the first update copies
    for step in steps[1:]:
        for k, v in step.items():
            if v.is_floating_point():
                expected[k] = DECAY * expected[k] + (1 - DECAY) * v
    floats = [k for k, v in expected.items() if v.is_floating_point()]
    assert any("running_mean" in k for k in floats)  # PooledNorm's statistics are averaged too
    for k in floats:
        torch.testing.assert_close(ckpt["state_dict"][k], expected[k], msg=k)
        torch.testing.assert_close(ckpt["current_model_state"][k], steps[-1][k], msg=k)
    moved = [k for k in floats if not torch.allclose(steps[-1][k], expected[k])]
    assert moved  # the average is not the live weights: the comparison above has teeth


def test_validating_the_checkpoint_gives_the_loss_logged_for_its_epoch(ema_fit, tmp_path):
    """What was validated during fit is what the checkpoint holds: `validate` from last.ckpt
    repeats the last epoch's val/loss, and the live weights would not."""
    corpus, run_dir, _, val_losses, _ = ema_fit
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    again = run_cli(["validate", *_args(corpus.root, tmp_path / "v"), "--ckpt_path", str(ckpt_path)])
    assert float(again.trainer.callback_metrics["val/loss"]) == pytest.approx(val_losses[-1], rel=1e-5)

    live = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    live["state_dict"] = live.pop("current_model_state")
    live_path = tmp_path / "live.ckpt"
    torch.save(live, live_path)
    other = run_cli(["validate", *_args(corpus.root, tmp_path / "w"), "--ckpt_path", str(live_path)])
    assert float(other.trainer.callback_metrics["val/loss"]) != pytest.approx(val_losses[-1], rel=1e-3)


def test_the_test_after_fit_reads_the_average_as_a_later_test_does(ema_fit, tmp_path):
    """The trainer that fitted still holds its average when it tests the best checkpoint; the
    test must read the checkpoint's average then too (Lightning's own hook would restore the
    live weights), so it agrees with `test --ckpt_path` of the same checkpoint."""
    corpus, run_dir, _, _, fit_test_loss = ema_fit
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    again = run_cli(["test", *_args(corpus.root, tmp_path / "t"), "--ckpt_path", str(best)])
    assert float(again.trainer.callback_metrics["test/loss"]) == pytest.approx(fit_test_loss, rel=1e-5)


def _average_of(ema: EMA, values: list[float]) -> float:
    """The callback's average of a one-weight model that took `values` in turn (the AveragedModel
    Lightning's WeightAveraging builds from the callback's arguments)."""
    model = torch.nn.Linear(1, 1, bias=False)
    averaged = torch.optim.swa_utils.AveragedModel(model, **ema._kwargs)
    for v in values:
        model.weight.data.fill_(v)
        averaged.update_parameters(model)
    return float(averaged.module.weight.detach())


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.995])
def test_warmup_follows_its_decay_schedule(decay):
    """With warmup, the n-th update (n models averaged so far) uses decay min(decay, (1+n)/(10+n));
    the first copies. Without it, every update uses `decay`."""
    values = [float(v) for v in torch.randn(40, generator=torch.Generator().manual_seed(0))]
    for warmup in (False, True):
        expected = values[0]
        for n, v in enumerate(values[1:], start=1):
            d = min(decay, (1 + n) / (10 + n)) if warmup else decay
            expected = d * expected + (1 - d) * v
        assert _average_of(EMA(decay, warmup=warmup), values) == pytest.approx(expected, rel=1e-5)


def test_warmup_lets_go_of_the_initial_weights():
    """The seventh probe's failure: at decay 0.995 the plain average still holds most of the
    initial weights after 240 steps (6 EmoDB epochs); with warmup it holds almost none."""
    values = [1.0] + [0.0] * 240  # the share of the initial weight left is the average itself
    assert _average_of(EMA(0.995), values) == pytest.approx(0.995**240, rel=1e-4)
    assert _average_of(EMA(0.995), values) > 0.25
    assert _average_of(EMA(0.995, warmup=True), values) < 0.01
