"""`predict --timeline`: windows, the chunked shared encoding, and what users feed it."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from hypothesis import given
from hypothesis import strategies as st

from ser_fcn.cli import main
from ser_fcn.corpora.audio import load_audio
from ser_fcn.data.features import log_spectrogram
from ser_fcn.inference.predict import FLAG_POOLED, Predictor
from ser_fcn.models.receptive_field import encoder_grid
from ser_fcn.corpora.manifest import Utterance
from ser_fcn.inference.call import build_call, held_out_rows
from ser_fcn.inference.timeline import (
    PAUSE, encode_file, encode_regions, receptive_field, timeline, whole_file_probs, windows,
)
from ser_fcn.inference.vad import VADConfig, speech_regions

from deploy_helpers import deltas_recurrent_checkpoint, tiny_checkpoint

# Shared encoding vs each window cut out and run alone: the largest difference of any class
# probability this test allows (measured on this 1-epoch model: max 0.0024, median 0.0005).
SHARED_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def ckpt(demo_corpus, tmp_path_factory):
    return tiny_checkpoint(demo_corpus, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def predictor(ckpt):
    return Predictor(ckpt)


@pytest.fixture(scope="module")
def long_wave(demo_corpus):
    """~70 s: demo utterances of mixed emotions with 2 s of digital silence between some."""
    parts = []
    for i, u in enumerate(demo_corpus.utterances[:24]):
        parts.append(load_audio(u["path"]))
        if i % 6 == 5:
            parts.append(torch.zeros(32000))
    return torch.cat(parts)


@given(n=st.integers(1, 5000), window=st.integers(1, 400), hop=st.integers(1, 400), snap=st.sampled_from([1, 8, 32]))
def test_windows_cover_every_frame_in_order(n, window, hop, snap):
    if hop > window or window < snap:
        with pytest.raises(ValueError):
            windows(n, window, hop, snap)
        return
    ws = windows(n, window, hop, snap)
    assert ws[0].first == 0 and ws[-1].stop == n
    assert all(w.first % snap == 0 and w.stop - w.first <= window for w in ws)
    assert all(a.first < b.first and b.first <= a.stop for a, b in zip(ws, ws[1:]))  # no gap


def test_chunked_encoding_equals_one_pass(predictor, long_wave):
    m, cfg = predictor.module, predictor.cfg
    spec = log_spectrogram(long_wave, cfg)
    n = torch.tensor([spec.shape[-1]])
    with torch.inference_mode():
        one, _ = m.net.encoder(m.normalize(spec[None, None], n), n)
    chunked = encode_file(m, long_wave, cfg, chunk_cells=9)  # ~25 chunks
    assert chunked.shape == one[0].shape
    assert torch.allclose(chunked, one[0], atol=1e-4 * float(one.abs().max()))
    whole = whole_file_probs(m, chunked)
    alone = predictor.analyse_wave(long_wave).prediction.probabilities
    assert np.allclose(whole, [alone[c] for c in predictor.class_names], atol=1e-5)


def _alone(predictor, wave, seg):
    sr = predictor.cfg.sample_rate
    p = predictor.analyse_wave(wave[round(seg["start"] * sr): round(seg["end"] * sr)]).prediction.probabilities
    return np.array([p[c] for c in predictor.class_names])


def _probs(predictor, seg):
    return np.array([seg["probabilities"][c] for c in predictor.class_names])


def test_exact_windows_equal_the_window_run_alone(predictor, long_wave):
    segs = timeline(predictor.module, long_wave, predictor.cfg, predictor.class_names, 3.0, 1.0)
    spoken = [s for s in segs if s["label"] != PAUSE]
    assert len(spoken) > 30
    for s in spoken[::5]:
        assert np.allclose(_probs(predictor, s), _alone(predictor, long_wave, s), atol=1e-5)


def test_shared_windows_are_close_to_the_window_run_alone(predictor, long_wave):
    m, cfg = predictor.module, predictor.cfg
    regions = speech_regions(long_wave, cfg.sample_rate)
    segs = timeline(m, long_wave, cfg, predictor.class_names, 3.0, 1.0, regions, encode_regions(m, long_wave, cfg, regions))
    spoken = [s for s in segs if s["label"] != PAUSE]
    starts = [max(a for a, _ in regions if a <= s["start"] + 1e-6) for s in spoken]
    assert all(round((s["start"] - a) * 100) % 32 == 0 for s, a in zip(spoken, starts))  # the region's cell grid
    assert any(round((s["start"] - a) * 100) > 0 for s, a in zip(spoken, starts))  # long regions are split
    diffs = [np.abs(_probs(predictor, s) - _alone(predictor, long_wave, s)).max() for s in spoken]
    print(f"shared vs alone: max |dp| {max(diffs):.4f}, median {np.median(diffs):.4f} over {len(diffs)} windows")
    assert max(diffs) <= SHARED_TOLERANCE


def test_a_window_differs_from_the_shared_encoding_only_in_its_border_cells(predictor, long_wave):
    """Cells whose receptive field lies inside the window are the shared cells; only the
    others (zero padding alone vs real audio here) may differ."""
    m, cfg = predictor.module, predictor.cfg
    cells = encode_file(m, long_wave, cfg)
    grid, rf = encoder_grid(m.net.encoder), receptive_field(m.net.encoder)
    jump, half = int(grid.jump_t), (rf - 1) / 2
    for first in (0, 96 * 32, 200 * 32):  # frames, on the cell grid
        spec = log_spectrogram(long_wave, cfg)[:, first: first + 300]
        n = torch.tensor([300])
        with torch.inference_mode():
            alone = m.net.encoder(m.normalize(spec[None, None], n), n)[0][0]
        shared = cells[..., first // jump: first // jump + alone.shape[-1]]
        centres = grid.centre_t + jump * np.arange(alone.shape[-1])
        inside = (centres - half >= 0) & (centres + half <= 299)
        assert inside.sum() >= 3 and (~inside).sum() >= 2
        scale = float(shared.abs().max())
        assert torch.allclose(alone[..., inside], shared[..., inside], atol=1e-4 * scale)
        if first:  # and the border cells do differ: the tolerance below is about them
            assert not torch.allclose(alone[..., ~inside], shared[..., ~inside], atol=1e-4 * scale)


def test_pauses_are_labelled_and_no_window_straddles_one(predictor, demo_corpus):
    """A call of demo utterances with 1 s pauses: each pause is a PAUSE entry (without
    probabilities), every window lies inside one speech region, and no window reaches into
    a pause by more than the VAD's padding."""
    first = demo_corpus.utterances[0]["speaker"]
    rows = [Utterance(u["utterance_id"], u["path"], u["label"], u["speaker"], u["session"], u["improvised"],
                      u["duration_s"]) for u in demo_corpus.utterances if u["speaker"] == first][:8]
    wave_np, ref = build_call(rows, pause_s=1.0, seed=0)
    wave, cfg = torch.from_numpy(wave_np), predictor.cfg
    regions = speech_regions(wave, cfg.sample_rate)
    segs = timeline(predictor.module, wave, cfg, predictor.class_names, 1.5, 0.5, regions,
                    encode_regions(predictor.module, wave, cfg, regions))
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs) and segs[-1]["end"] == pytest.approx(len(wave) / 16000, abs=1e-3)
    pauses = [s for s in segs if s["label"] == PAUSE]
    assert all(s["probabilities"] is None for s in pauses)
    assert all(set(s["probabilities"]) == set(predictor.class_names) for s in segs if s["label"] != PAUSE)
    pad = VADConfig().pad_s + 0.01
    for a, b in zip(ref, ref[1:]):  # the reference pause, less the padding, is inside one PAUSE entry
        assert any(p["start"] <= a.end + pad and p["end"] >= b.start - pad for p in pauses), (a, b)
    for w in (s for s in segs if s["label"] != PAUSE):
        assert any(r0 - 1e-6 <= w["start"] and w["end"] <= r1 + 1e-6 for r0, r1 in regions), w
        for a, b in zip(ref, ref[1:]):
            assert min(w["end"], b.start) - max(w["start"], a.end) <= pad, (w, a, b)


def test_make_call_from_a_checkpoint_takes_its_test_speaker(ckpt):
    rows, who = held_out_rows(ckpt, "test")
    val, _ = held_out_rows(ckpt, "val")
    assert len({r.speaker for r in rows}) == 1 and {r.speaker for r in rows}.isdisjoint({r.speaker for r in val})
    assert "test speaker" in who and rows[0].speaker in who


def test_predict_timeline_on_what_users_have(ckpt, predictor, long_wave, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    wave = long_wave.numpy()
    sf.write(folder / "long.wav", wave, 16000)
    w44 = AF.resample(long_wave[: 16000 * 20], 16000, 44100).numpy()
    sf.write(folder / "stereo44k.wav", np.stack([w44, 0.5 * w44], 1), 44100)
    sf.write(folder / "silent.wav", np.zeros(16000 * 5, dtype=np.float32), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot audio at all")
    out, figs = tmp_path / "t.jsonl", tmp_path / "figs"
    monkeypatch.setattr("ser_fcn.inference.predict.LONG_FILE_S", 30.0)  # long.wav takes the pooled path
    monkeypatch.setattr("ser_fcn.figures.timeline.PANEL_S", 40.0)  # and gets two panels
    with pytest.raises(SystemExit) as e:
        main(["predict", "--ckpt", str(ckpt), "--timeline", "--out", str(out), "--figures", str(figs), str(folder)])
    assert e.value.code == 1  # the broken file
    recs = {r["path"].split("/")[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(recs) == ["broken.wav", "long.wav", "silent.wav", "stereo44k.wav"]
    assert recs["broken.wav"]["error"] and "timeline" not in recs["broken.wav"]
    assert [s["label"] for s in recs["silent.wav"]["timeline"]] == [PAUSE]  # no speech: one pause
    long = recs["long.wav"]
    assert FLAG_POOLED in long["flags"] and long["timeline"][-1]["end"] == pytest.approx(len(wave) / 16000, abs=0.01)
    assert {s["label"] for s in long["timeline"]} - {PAUSE} <= set(predictor.class_names)
    st44 = recs["stereo44k.wav"]["timeline"]
    assert st44[-1]["end"] == pytest.approx(20.0, abs=0.01) and all(set(s["probabilities"]) == set(predictor.class_names) for s in st44 if s["label"] != PAUSE)
    panels = [f"long-{i + 1:02d}.png" for i in range(int(np.ceil(len(wave) / 16000 / 40.0)))]
    assert len(panels) > 1 and sorted(p.name for p in figs.glob("*.png")) == [*panels, "silent.png", "stereo44k.png"]
    assert "long.wav: 0.0-" in capsys.readouterr().out


def test_a_model_without_attention_gets_exact_windows_padded_to_the_window():
    """The segment baselines see every window, the short last one too, as a zero-padded 3 s
    segment (as in training); shared encoding is not offered for them."""
    from ser_fcn.data.features import SpectrogramConfig
    from ser_fcn.models.baselines import SegmentClassifier
    from ser_fcn.inference.timeline import supports_shared
    from ser_fcn.training.module import SERModule

    torch.manual_seed(0)
    m, cfg = SERModule(SegmentClassifier(4)).eval(), SpectrogramConfig()
    assert not supports_shared(m.net)
    wave = torch.randn(16000 * 69 // 2) * 0.1  # 34.5 s: 33 windows, the short last one alone in its batch of 32
    segs = timeline(m, wave, cfg, list("abcd"), 3.0, 1.0, regions=[(0.0, 34.5)])
    last = segs[-1]
    spec = log_spectrogram(wave[round(last["start"] * 16000):], cfg)
    assert spec.shape[-1] < 300 and len(segs) == 33
    x = torch.nn.functional.pad(spec, (0, 300 - spec.shape[-1]))[None, None]
    with torch.inference_mode():
        alone = m(x, torch.tensor([spec.shape[-1]]))[0].softmax(-1)[0].numpy()
    assert np.allclose([last["probabilities"][c] for c in "abcd"], alone, atol=1e-5)


@pytest.fixture(scope="module")
def deltas_recurrent(demo_corpus, tmp_path_factory):
    return Predictor(deltas_recurrent_checkpoint(demo_corpus, tmp_path_factory))


def test_the_shared_encoding_of_a_model_with_deltas_and_a_recurrent_layer(deltas_recurrent, long_wave):
    """Chunked encoding (the deltas computed per chunk) equals one pass of the model's encode,
    and the whole-file answer pooled from it (through the LSTM) is the file run alone; the
    windows stay close to each window run alone."""
    p = deltas_recurrent
    m, cfg = p.module, p.cfg
    assert m.net.deltas is not None and m.net.recurrent is not None
    spec = log_spectrogram(long_wave, cfg)
    n = torch.tensor([spec.shape[-1]])
    with torch.inference_mode():
        one, _ = m.net.encode(m.normalize(spec[None, None], n), n)
    chunked = encode_file(m, long_wave, cfg, chunk_cells=9)
    assert torch.allclose(chunked, one[0], atol=1e-4 * float(one.abs().max()))
    alone = p.analyse_wave(long_wave).prediction.probabilities
    assert np.allclose(whole_file_probs(m, chunked), [alone[c] for c in p.class_names], atol=1e-5)
    regions = speech_regions(long_wave, cfg.sample_rate)
    segs = timeline(m, long_wave, cfg, p.class_names, 3.0, 1.0, regions, encode_regions(m, long_wave, cfg, regions))
    diffs = [np.abs(_probs(p, s) - _alone(p, long_wave, s)).max() for s in segs if s["label"] != PAUSE]
    print(f"deltas + recurrent, shared vs alone: max |dp| {max(diffs):.4f}, median {np.median(diffs):.4f}")
    assert max(diffs) <= SHARED_TOLERANCE
