"""Mixup of training batches: the mix and its lengths, the two-label loss SERModule trains on,
and `model.mixup` from a config acting on training batches only."""

import pytest
import torch
import torch.nn.functional as F

from ser_fcn.training.mixup import Mixup
from ser_fcn.training.module import SERModule


def _batch(lengths, n_bins=6):
    lengths = torch.tensor(lengths)
    width = int(lengths.max())
    x = torch.randn(len(lengths), 1, n_bins, width) + 3.0  # no exact zeros inside an utterance
    return x * (torch.arange(width) < lengths[:, None])[:, None, None, :], lengths


def test_the_mix_is_the_weighted_pair_with_the_longer_length_and_zero_padding():
    torch.manual_seed(0)
    x, lengths = _batch([10, 25, 17, 25])
    perm = torch.tensor([2, 0, 3, 1])
    mixed, mixed_lengths = Mixup.mix(x, lengths, 0.7, perm)
    assert mixed_lengths.tolist() == [17, 25, 25, 25]
    for i, j in enumerate(perm.tolist()):
        assert torch.allclose(mixed[i], 0.7 * x[i] + 0.3 * x[j])
        assert (mixed[i, ..., int(mixed_lengths[i]):] == 0).all()  # nothing beyond the longer length
        assert (mixed[i, ..., : int(mixed_lengths[i])] != 0).all()  # and no hole inside it
    same, same_lengths = Mixup.mix(x, lengths, 0.3, torch.arange(4))  # each its own partner
    assert torch.allclose(same, x) and torch.equal(same_lengths, lengths)


def test_draws_are_a_permutation_and_a_beta_lambda():
    torch.manual_seed(0)
    x, lengths = _batch([8] * 6)
    lams = []
    for _ in range(400):
        _, _, lam, perm = Mixup(alpha=0.2)(x, lengths)
        assert sorted(perm.tolist()) == list(range(6))
        lams.append(lam)
    lams = torch.tensor(lams)
    assert ((lams >= 0) & (lams <= 1)).all()
    # Beta(0.2, 0.2) is U-shaped: most draws near 0 or 1, symmetric about 1/2
    assert ((lams < 0.1) | (lams > 0.9)).float().mean() > 0.5
    assert abs(float(lams.mean()) - 0.5) < 0.06
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)


class _MeanNet(torch.nn.Module):
    """logits from each utterance's mean over its valid frames; records what it was given."""

    def __init__(self, n_bins=6, num_classes=3):
        super().__init__()
        self.fc = torch.nn.Linear(n_bins, num_classes)
        self.seen = None

    def forward(self, x, lengths):
        self.seen = (x.detach().clone(), lengths.clone())
        return self.fc(x[:, 0].sum(-1) / lengths[:, None]), None


class _Fixed(Mixup):
    def forward(self, x, lengths):
        perm = torch.tensor([1, 2, 0])
        return (*self.mix(x, lengths, 0.8, perm), 0.8, perm)


def test_the_training_loss_is_the_lambda_weighted_loss_of_both_labels():
    torch.manual_seed(0)
    x, lengths = _batch([5, 9, 7])
    y = torch.tensor([0, 2, 1])
    batch = {"x": x, "lengths": lengths, "y": y, "ids": ["a", "b", "c"], "utt_index": torch.arange(3)}
    module = SERModule(_MeanNet(), num_classes=3, n_bins=6, mixup=_Fixed())
    module.class_weights.copy_(torch.tensor([1.0, 2.0, 0.5]))
    loss = module.training_step(batch, 0)

    seen_x, seen_lengths = module.net.seen
    expect_x, expect_lengths = Mixup.mix(module.normalize(x, lengths), lengths, 0.8, torch.tensor([1, 2, 0]))
    assert torch.allclose(seen_x, expect_x) and torch.equal(seen_lengths, expect_lengths)
    logits, _ = module.net(expect_x, expect_lengths)
    w = module.class_weights
    expect = 0.8 * F.cross_entropy(logits, y, weight=w) + 0.2 * F.cross_entropy(logits, y[[1, 2, 0]], weight=w)
    assert torch.allclose(loss, expect)
    # without mixup: the plain weighted loss of the batch as it came
    module.mixup = None
    plain = module.training_step(batch, 0)
    logits, _ = module.net(module.normalize(x, lengths), lengths)
    assert torch.allclose(plain, F.cross_entropy(logits, y, weight=w))
    assert not torch.allclose(plain, loss)


class _Counting(Mixup):
    calls = 0

    def forward(self, x, lengths):
        type(self).calls += 1
        return super().forward(x, lengths)


def test_model_mixup_from_a_config_mixes_training_batches_only(demo_corpus, tmp_path, monkeypatch):
    """`model.mixup` in YAML builds the Mixup the module trains with; validation and test do not
    mix, and the checkpoint's test runs without it."""
    import yaml
    from helpers import fit_args

    from ser_fcn.cli import run_cli
    from ser_fcn.training import mixup

    monkeypatch.setattr(mixup, "Mixup", _Counting)
    _Counting.calls = 0
    cfg = tmp_path / "mixup.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"mixup": {"class_path": "ser_fcn.training.mixup.Mixup",
                                                       "init_args": {"alpha": 0.4}}}}))
    cli = run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "run", "--config", str(cfg),
                                    "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                                    "--trainer.logger", "false")])
    assert isinstance(cli.model.mixup, _Counting) and cli.model.mixup.alpha == 0.4
    assert _Counting.calls == 4  # 2 epochs x 2 training batches; validation and test never mix
    assert "mixup" not in cli.model.hparams  # a checkpoint loads without it
