"""Voice activity detection (inference/vad.py): pauses found, short gaps kept inside speech."""

import numpy as np
import pytest
import torch

from ser_fcn.inference.vad import VADConfig, block_levels, regions_from_blocks, speech_regions

SR = 16000


def _voiced(seconds, f0=140.0, seed=0):
    """A vowel-like burst: harmonics of f0 with a syllable-rate envelope, -20 dBFS or so."""
    t = np.arange(round(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.1 * env * x / np.abs(x).max()).astype(np.float32)


def _call(speech_s=(1.2, 0.8, 2.0), pause_s=0.7, noise_dbfs=None):
    parts, spans, t = [], [], 0.0
    for i, s in enumerate(speech_s):
        if i:
            parts.append(np.zeros(round(pause_s * SR), np.float32))
            t += pause_s
        parts.append(_voiced(s, 120 + 30 * i))
        spans.append((t, t + s))
        t += s
    x = np.concatenate(parts)
    if noise_dbfs is not None:
        x = x + (10 ** (noise_dbfs / 20) * np.random.default_rng(0).standard_normal(x.size)).astype(np.float32)
    return torch.from_numpy(x), spans


@pytest.mark.parametrize("detector", ["webrtc", "energy"])
@pytest.mark.parametrize("noise_dbfs", [None, -65.0])  # the energy rule needs SNR > rel_db (35 dB)
def test_each_burst_is_one_region_and_the_pauses_are_not_speech(detector, noise_dbfs):
    wave, spans = _call(noise_dbfs=noise_dbfs)
    cfg = VADConfig(detector=detector)
    regions = speech_regions(wave, SR, cfg)
    assert len(regions) == len(spans), regions
    for (a, b), (s, e) in zip(regions, spans):
        # padding, plus 30 ms frames and webrtcvad's hangover at the end
        assert abs(a - s) <= cfg.pad_s + 0.04 and 0 <= b - e <= cfg.pad_s + 0.15
    for (_, e), (s, _) in zip(spans, spans[1:]):  # the middle of each pause is outside every region
        mid = (e + s) / 2
        assert not any(a <= mid <= b for a, b in regions)


def test_silence_has_no_speech_and_gain_does_not_move_the_energy_rule():
    assert speech_regions(torch.zeros(SR * 3), SR) == []
    wave, _ = _call()
    cfg = VADConfig(detector="energy")
    assert speech_regions(wave, SR, cfg) == speech_regions(wave * 0.05, SR, cfg)  # relative to the file's level


def test_post_processing_closes_short_gaps_drops_clicks_and_pads():
    cfg = VADConfig(min_pause_s=0.25, min_speech_s=0.1, pad_s=0.05)
    blocks = np.zeros(300, dtype=bool)
    blocks[10:50] = True    # 0.1-0.5 s
    blocks[70:120] = True   # 0.2 s gap: closed
    blocks[160:165] = True  # a 50 ms click after a 0.4 s pause: dropped
    blocks[200:260] = True  # 0.8 s pause before: its own region
    assert regions_from_blocks(blocks, cfg) == [(0.05, 1.25), (1.95, 2.65)]
    assert regions_from_blocks(np.ones(30, dtype=bool), cfg) == [(0.0, 0.3)]  # clipped to the file


def test_block_levels_in_chunks_equal_one_pass():
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(SR * 3 + 77).astype(np.float32)) * 0.1
    one = block_levels(x, SR, chunk_s=100)
    assert one.size == -(-x.numel() // 160)
    assert np.allclose(block_levels(x, SR, chunk_s=0.7), one, atol=1e-4)
    assert one[0] == pytest.approx(10 * np.log10(np.mean(x[:160].double().numpy() ** 2)), abs=1e-4)


def test_an_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="'webrtc' or 'energy'"):
        speech_regions(torch.zeros(SR), SR, VADConfig(detector="silero"))
