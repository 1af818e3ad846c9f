"""SpecAugment masking of training batches: masks stay inside each utterance, padding stays 0."""

import torch

from ser_fcn.training.augment import SpecAugment


def _batch(lengths, n_bins=40, width=None):
    lengths = torch.tensor(lengths)
    width = width or int(lengths.max())
    x = torch.randn(len(lengths), 1, n_bins, width) + 5.0  # no exact zeros inside an utterance
    x = x * (torch.arange(width) < lengths[:, None])[:, None, None, :]
    return x, lengths


def test_time_masks_fall_inside_each_utterance_and_cover_at_most_their_share():
    torch.manual_seed(0)
    aug = SpecAugment(freq_masks=0, freq_width=0, time_masks=2, time_fraction=0.2)
    x, lengths = _batch([50, 300, 120, 300])
    masked_any = False
    for _ in range(50):
        y = aug(x, lengths)
        assert (y[x == 0] == 0).all()  # padding stays exactly 0
        for i, n in enumerate(lengths.tolist()):
            cols = (y[i, 0] == 0).all(0)  # frames zeroed across every bin
            assert not cols[:n].all()
            assert int(cols[:n].sum()) <= 2 * int(0.2 * n)
            masked_any |= bool(cols[:n].any())
            # a masked frame is zero in every bin; an unmasked one is the input
            assert torch.equal(y[i, 0][:, :n][:, ~cols[:n]], x[i, 0][:, :n][:, ~cols[:n]])
    assert masked_any


def test_frequency_masks_zero_whole_bins_and_differ_between_utterances():
    torch.manual_seed(1)
    aug = SpecAugment(freq_masks=1, freq_width=10, time_masks=0, time_fraction=0.0)
    x, lengths = _batch([80, 80, 80, 80])
    patterns = set()
    for _ in range(20):
        y = aug(x, lengths)
        for i in range(len(lengths)):
            rows = (y[i, 0] == 0).all(1)
            assert int(rows.sum()) <= 10
            patterns.add(tuple(rows.nonzero().flatten().tolist()))
    assert len(patterns) > 3  # iid: one mask per utterance, not one per batch


def test_no_masks_is_the_identity():
    x, lengths = _batch([30, 60])
    assert torch.equal(SpecAugment(0, 0, 0, 0.0)(x, lengths), x)


class _Recorder(SpecAugment):
    calls = 0

    def forward(self, x, lengths):
        type(self).calls += 1
        return super().forward(x, lengths)


def test_the_real_speech_profile_masks_training_batches_only(demo_corpus, tmp_path, monkeypatch):
    """experiments/profiles/real_speech.yaml builds a SERModule whose training steps (and only
    those) go through SpecAugment, with the cosine schedule stepping once per epoch."""
    from helpers import REPO, fit_args

    from ser_fcn.cli import run_cli
    from ser_fcn.models.attention import PooledNorm
    from ser_fcn.training import augment
    from ser_fcn.training.callbacks import EMA

    monkeypatch.setattr(augment, "SpecAugment", _Recorder)
    _Recorder.calls = 0
    cli = run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "run", "--config",
                                    str(REPO / "experiments" / "profiles" / "real_speech.yaml"),
                                    "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                                    "--trainer.logger", "false", "--model.scheduler.init_args.T_max", "2")])
    assert isinstance(cli.model.augment, _Recorder)
    assert isinstance(cli.model.net.head.classifier[0], PooledNorm)  # the recipe's pooled_norm
    assert cli.model.net.deltas is not None  # and its delta channels
    assert [c.decay for c in cli.trainer.callbacks if isinstance(c, EMA)] == [0.98]  # and its average
    assert _Recorder.calls == 4  # 2 epochs x 2 training batches; validation and test do not mask
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == 0.0  # cosine decay reached 0 at T_max


def test_the_real_speech_profile_sets_pooled_norm_and_deltas_on_every_corpus_table_row():
    """One recipe for every row of the EmoDB table: the profile's net settings apply to the FCN
    rows and to the segmented AlexNet alike (a setting one net lacked would fail here)."""
    import subprocess
    import sys

    import yaml
    from helpers import REPO

    from ser_fcn.study.corpus_tables import SPEAKER_ROWS

    for row in SPEAKER_ROWS:
        out = subprocess.run([sys.executable, "-m", "ser_fcn", "fit", "--config", f"experiments/{row.experiment}.yaml",
                              "--config", "experiments/profiles/real_speech.yaml", "--print_config"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
        net = yaml.safe_load(out)["model"]["net"]
        assert net["init_args"]["pooled_norm"] is True and net["init_args"]["deltas"] is True, (row.experiment, net)


def test_every_cosine_schedule_in_the_experiments_reaches_zero_at_the_last_epoch():
    """A profile with a cosine decay sets T_max to its max_epochs: changing one without the other
    would either stop training at a high rate or restart the cosine upwards."""
    import yaml
    from helpers import REPO

    cosine = []
    for path in sorted((REPO / "experiments").rglob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        sched = (cfg.get("model") or {}).get("scheduler") or {}
        if str(sched.get("class_path", "")).endswith("CosineAnnealingLR"):
            cosine.append(path.name)
            assert sched["init_args"]["T_max"] == cfg["trainer"]["max_epochs"], path
    assert "real_speech.yaml" in cosine
