"""Augmentation of training batches: SpecAugment masks stay inside each utterance and padding stays 0;
SpeedPerturb stretches time and moves frequencies as playing the audio faster or slower does."""

import torch

import numpy as np
import pytest

from ser_fcn.data.features import SpectrogramConfig
from ser_fcn.training.augment import SpecAugment, SpeedPerturb


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
        y, same = aug(x, lengths)
        assert torch.equal(same, lengths)
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
        y, _ = aug(x, lengths)
        for i in range(len(lengths)):
            rows = (y[i, 0] == 0).all(1)
            assert int(rows.sum()) <= 10
            patterns.add(tuple(rows.nonzero().flatten().tolist()))
    assert len(patterns) > 3  # iid: one mask per utterance, not one per batch


def test_no_masks_is_the_identity():
    x, lengths = _batch([30, 60])
    y, same = SpecAugment(0, 0, 0, 0.0)(x, lengths)
    assert torch.equal(y, x) and torch.equal(same, lengths)


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
    assert [type(a) for a in cli.model.augment] == [_Recorder]
    assert isinstance(cli.model.net.head.classifier[0], PooledNorm)  # the recipe's pooled_norm
    assert cli.model.net.deltas is not None  # and its delta channels
    assert [c.decay for c in cli.trainer.callbacks if isinstance(c, EMA)] == [0.98]  # and its average
    assert _Recorder.calls == 4  # 2 epochs x 2 training batches; validation and test do not mask
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == 0.0  # cosine decay reached 0 at T_max


def test_the_real_speech_profile_trains_in_bf16_mixed(demo_corpus, tmp_path):
    """`--trainer.precision bf16-mixed` (what the docs give for a GPU; autocast on this CPU) with
    the recipe: its PooledNorm sees bf16 batches and keeps float32 running statistics that
    training batches set (it failed on the second one), and the run validates."""
    import math

    from helpers import REPO, fit_args

    from ser_fcn.cli import run_cli

    cli = run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "run", "--config",
                                    str(REPO / "experiments" / "profiles" / "real_speech.yaml"),
                                    "--trainer.precision", "bf16-mixed", "--trainer.max_epochs", "2",
                                    "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
                                    "--model.scheduler.init_args.T_max", "2")])
    norm = cli.model.net.head.classifier[0]
    assert cli.trainer.precision == "bf16-mixed"
    assert norm.running_var.dtype == torch.float32 and torch.isfinite(norm.running_var).all()
    assert not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))  # set by training
    assert len(cli.model.history) == 2 and all(math.isfinite(h["val/loss"]) for h in cli.model.history)


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


# --- SpeedPerturb ---------------------------------------------------------------------


def _speed(factors, bins_hz):
    aug = SpeedPerturb(factors)
    aug.set_bins(bins_hz)
    return aug


def test_speed_perturb_moves_a_line_to_factor_times_its_bin_and_stretches_time_on_linear_bins():
    """On linear bins (k x 20 Hz) a bright row k lands on row k x factor; n frames become n / factor."""
    hz = np.arange(64) * 20.0
    x = torch.zeros(1, 1, 64, 100)
    x[0, 0, 20] = 1.0
    for factor, row in ((1.25, 25), (0.8, 16), (2.0, 40)):
        y, lengths = _speed([factor], hz)(x, torch.tensor([100]))
        assert int(lengths) == round(100 / factor) == y.shape[-1]
        assert (y[0, 0].argmax(0) == row).all()


def test_speed_perturb_on_log_mel_matches_the_waveform_played_faster_or_slower():
    """The spectrogram-domain version against the real thing: a harmonic sound resampled as
    torchaudio's speed perturbation does, then turned into a 128-band log-mel. The warped
    spectrogram matches it far better than the unwarped one stretched in time only."""
    import torch.nn.functional as F
    import torchaudio.functional as AF

    from ser_fcn.data.features import log_spectrogram

    cfg = SpectrogramConfig(n_bins=128, mel=True)
    t = torch.arange(int(1.5 * cfg.sample_rate)) / cfg.sample_rate
    f0 = 180 + 40 * torch.sin(2 * torch.pi * 1.5 * t)  # a gliding pitch, ten harmonics
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / cfg.sample_rate
    wave = sum(torch.sin(h * phase) / h for h in range(1, 11)) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 2 * t) ** 2)
    spec = log_spectrogram(wave, cfg)[None, None]
    n = torch.tensor([spec.shape[-1]])
    for factor in (0.9, 1.1):
        played = AF.resample(wave, round(cfg.sample_rate * factor), cfg.sample_rate)  # what SpeedPerturbation does
        real = log_spectrogram(played, cfg)
        warped, lengths = _speed([factor], cfg.bin_frequencies())(spec, n)
        time_only = F.interpolate(spec[0], size=int(lengths), mode="linear", align_corners=False)[None]  # no warp
        assert abs(int(lengths) - real.shape[-1]) <= 1
        m = min(int(lengths), real.shape[-1])
        band = slice(0, 100)  # below 5.5 kHz: the slowed spectrogram's top bins hold no recorded audio
        err = (warped[0, 0, band, :m] - real[band, :m]).abs().mean()
        err_time_only = (time_only[0, 0, band, :m] - real[band, :m]).abs().mean()
        assert err < 0.5 * err_time_only


def test_speed_perturb_keeps_padding_zero_and_draws_a_factor_per_utterance():
    torch.manual_seed(0)
    x, lengths = _batch([100] * 20, n_bins=40, width=130)
    hz = SpectrogramConfig(n_bins=40, mel=True).bin_frequencies()
    y, new = _speed([0.8, 1.25], hz)(x, lengths)
    assert set(new.tolist()) == {125, 80}  # both speeds drawn in one batch
    assert y.shape[-1] == 125
    for i, n in enumerate(new.tolist()):
        assert (y[i, :, :, n:] == 0).all() and (y[i, 0, :20, :n] != 0).any()
    same, same_lengths = _speed([1.0], hz)(x, lengths)
    assert torch.equal(same, x[..., :100]) and torch.equal(same_lengths, lengths)


def test_speed_perturb_without_the_bins_frequencies_says_how_they_are_set():
    from ser_fcn.utils.errors import ConfigError

    x, lengths = _batch([50, 40])
    with pytest.raises(ConfigError, match="set_bins"):
        SpeedPerturb([1.1])(x, lengths)
    with pytest.raises(ValueError, match="positive"):
        SpeedPerturb([0.0, 1.0])


def test_a_list_of_augmentations_runs_in_order_and_gets_the_data_bins(demo_corpus, tmp_path):
    """`model.augment` as a list: SpeedPerturb then SpecAugment, configured in YAML, learns the
    rows' frequencies from the datamodule at fit set-up and trains."""
    import yaml
    from helpers import fit_args

    from ser_fcn.cli import run_cli

    cfg = tmp_path / "augment.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"augment": [
        {"class_path": "ser_fcn.training.augment.SpeedPerturb", "init_args": {"factors": [0.9, 1.1]}},
        {"class_path": "ser_fcn.training.augment.SpecAugment"}]}}))
    cli = run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / "run", "--config", str(cfg),
                                    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                                    "--trainer.logger", "false")])
    speed, mask = cli.model.augment
    assert isinstance(speed, SpeedPerturb) and isinstance(mask, SpecAugment)
    assert np.array_equal(speed.bins_hz, cli.datamodule.spec.bin_frequencies())
    assert speed._warps  # it warped training batches
