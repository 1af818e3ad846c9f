"""Audio reading, the paper's spectrogram, and the feature cache."""

import os
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_fcn.corpora.audio import AudioError, load_audio
from ser_fcn.data.features import FeatureCache, SpectrogramConfig, log_spectrogram


def write_wav(path, x, sr=16000, subtype="PCM_16"):
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def tone(seconds=1.0, sr=16000, hz=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * hz * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_spectrogram_shape_and_peak_follow_the_paper_settings():
    cfg = SpectrogramConfig()
    assert (cfg.win_length, cfg.hop_length) == (640, 160)  # 40 ms / 10 ms at 16 kHz
    wave = torch.tensor(tone(2.0, hz=1000.0), dtype=torch.float32)
    spec = log_spectrogram(wave, cfg)
    assert spec.shape == (200, cfg.n_frames(len(wave))) == (200, 1 + (32000 - 640) // 160)
    # DFT 800 at 16 kHz: 20 Hz a bin, so 1 kHz lies in bin 50
    assert int(spec.mean(1).argmax()) == 50


def test_spectrogram_matches_a_direct_dft_of_one_frame():
    cfg = SpectrogramConfig()
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32)
    spec = log_spectrogram(torch.from_numpy(wave), cfg)
    k = 7
    frame = wave[k * 160 : k * 160 + 640] * np.hamming(641)[:640]  # torch's periodic Hamming
    padded = np.zeros(800)
    padded[80:720] = frame  # torch.stft centres a short window inside n_fft
    ref = np.log(np.abs(np.fft.rfft(padded))[:200] + cfg.eps)
    np.testing.assert_allclose(spec[:, k].numpy(), ref, rtol=1e-4, atol=1e-4)


def test_silence_gives_a_finite_spectrogram():
    spec = log_spectrogram(torch.zeros(16000))
    assert torch.isfinite(spec).all()


def test_resampling_and_stereo_mixdown(tmp_path):
    x = tone(1.0, sr=44100, hz=1000.0, channels=2)
    x[:, 1] *= 0.5
    wave = load_audio(write_wav(tmp_path / "a.wav", x, sr=44100))
    assert abs(len(wave) - 16000) <= 1
    ref = load_audio(write_wav(tmp_path / "b.wav", 0.75 * tone(1.0, hz=1000.0)))
    # same tone, mixed down and resampled: same spectrum away from the edges
    a, b = log_spectrogram(wave)[:, 5:-5], log_spectrogram(ref)[:, 5:-5]
    assert int(a.mean(1).argmax()) == int(b.mean(1).argmax()) == 50
    assert (a - b).abs()[49:52].max() < 0.05  # the tone's bins agree (noise floors differ)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"not audio at all" * 20), "not a readable audio file"),
        (lambda p: p.write_bytes(open(write_wav(p, tone(1.0)), "rb").read()[:20000]), "truncated"),
    ],
)
def test_bad_audio_is_named(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_shorter_than_one_window_is_refused(tmp_path):
    path = write_wav(tmp_path / "short.wav", tone(0.02))
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(AudioError, match="shorter than one analysis window") as e:
        cache.build(path)
    assert str(path) in str(e.value)


def test_cache_hit_miss_and_staleness(tmp_path):
    wav = write_wav(tmp_path / "a.wav", tone(1.0))
    cache = FeatureCache(tmp_path / "cache")
    first = cache.load(wav)
    entry = cache.entry_path(wav)
    assert entry.is_file()
    np.testing.assert_allclose(first, log_spectrogram(load_audio(wav)).numpy(), atol=5e-3)  # float16
    mtime = entry.stat().st_mtime_ns
    assert np.array_equal(cache.load(wav), first) and entry.stat().st_mtime_ns == mtime  # a hit
    # a changed audio file is a different entry
    write_wav(wav, tone(1.5, hz=300.0))
    os.utime(wav, ns=(mtime + 10**9, mtime + 10**9))
    assert cache.entry_path(wav) != entry
    assert cache.load(wav).shape[1] == SpectrogramConfig().n_frames(24000)
    # a changed setting is a different cache folder
    other = FeatureCache(tmp_path / "cache", SpectrogramConfig(win_ms=20.0))
    assert other.dir != cache.dir and other.load(wav).shape[1] != cache.load(wav).shape[1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_broken_cache_entry_is_rebuilt_not_loaded(tmp_path, damage, caplog):
    wav = write_wav(tmp_path / "a.wav", tone(1.0))
    cache = FeatureCache(tmp_path / "cache")
    good = cache.load(wav).copy()
    entry = cache.entry_path(wav)
    blob = bytearray(entry.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[-100] ^= 0xFF
    else:
        blob = bytearray(b"\x00" * 64)
    entry.write_bytes(bytes(blob))
    assert np.array_equal(cache.load(wav), good)
    assert entry.read_bytes() != bytes(blob)  # rewritten
    assert "rebuilding" in caplog.text


def test_concurrent_builders_leave_the_cache_whole(tmp_path):
    wavs = [write_wav(tmp_path / f"{i}.wav", tone(1.0 + i / 10, hz=200.0 + 50 * i)) for i in range(6)]
    root = tmp_path / "cache"
    errors = []

    def build():
        try:
            c = FeatureCache(root)
            for w in wavs:
                c.build(w)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cache = FeatureCache(root)
    for w in wavs:
        assert np.array_equal(cache.load(w), cache.compute(w).numpy().astype(np.float16))
    assert not list(root.rglob("*.tmp"))


def test_ensure_skips_and_counts_bad_files_only_when_asked(tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(1.0))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(AudioError, match="bad.wav"):
        cache.ensure([good, bad], progress=False)
    frames, errors = cache.ensure([good, bad], progress=False, skip_bad=True)
    assert frames[0] == SpectrogramConfig().n_frames(16000) == 97 and frames[1] is None
    assert len(errors) == 1 and errors[0].path == str(bad)


# --- log-mel input (--data.mel; not the paper's) ------------------------------------


MEL = SpectrogramConfig(mel=True, n_bins=128)


def test_a_tone_peaks_in_the_mel_band_centred_nearest_it_up_to_8_khz():
    """Each row is one mel band over 0 .. 8 kHz: a tone lands in the band whose centre is nearest
    (6 kHz, beyond the paper's 0-4 kHz bins, included)."""
    centres = MEL.bin_frequencies()
    assert len(centres) == 128 and np.all(np.diff(centres) > 0) and centres[-1] < 8000
    for hz in (300.0, 1000.0, 6000.0):
        spec = log_spectrogram(torch.tensor(tone(1.0, hz=hz), dtype=torch.float32), MEL)
        assert spec.shape == (128, MEL.n_frames(16000))
        assert abs(int(spec.mean(1).argmax()) - int(np.abs(centres - hz).argmin())) <= 1, hz


def test_the_mel_spectrogram_is_torchaudios_on_the_same_frames():
    """An independent composition (torchaudio's MelSpectrogram: power 2, HTK, no filter norm) on
    the wave padded so its frames start where ours do gives the same log-mel."""
    import torchaudio

    wave = torch.from_numpy(np.random.default_rng(1).standard_normal(8000).astype(np.float32))
    left = (MEL.n_fft - MEL.win_length) // 2
    ref = torchaudio.transforms.MelSpectrogram(
        16000, n_fft=MEL.n_fft, win_length=MEL.win_length, hop_length=MEL.hop_length, f_min=0.0, f_max=8000.0,
        n_mels=MEL.n_bins, window_fn=torch.hamming_window, power=2.0, center=False, norm=None, mel_scale="htk")(
        torch.nn.functional.pad(wave, (left, MEL.n_fft - MEL.win_length - left)))
    ours = log_spectrogram(wave, MEL)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, torch.log(ref + MEL.eps), atol=1e-3)


def test_mel_settings_are_their_own_cache_entries_and_come_back_from_hparams():
    assert MEL.digest() != SpectrogramConfig(n_bins=128).digest()
    assert SpectrogramConfig.from_hparams({"mel": True, "n_bins": 128, "hop_ms": 10}) == MEL
    assert SpectrogramConfig.from_hparams({"n_bins": 128}).mel is False


def test_impossible_bin_counts_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="exceeds the 401 bins"):
        SpectrogramConfig(n_bins=500)
    with pytest.raises(ValueError, match="too narrow for a 800-point DFT"):
        SpectrogramConfig(mel=True, n_bins=400)  # low filters narrower than the 20 Hz DFT bins
