"""make-call: a test call from one speaker's utterances, with its reference segments."""

import numpy as np
import pytest
import soundfile as sf

from ser_fcn.cli import main
from ser_fcn.corpora.manifest import ManifestError, Utterance, read_manifest, write_manifest
from ser_fcn.inference.call import build_call, speaker_rows
from ser_fcn.inference.timeline_eval import read_reference

SR = 16000


@pytest.fixture
def manifest(tmp_path):
    """Six utterances of speaker A (tones of different lengths and pitches), two of B."""
    rows = []
    for i, (spk, seconds) in enumerate([("A", 0.7), ("A", 1.3), ("A", 0.9), ("A", 2.1), ("A", 1.0), ("A", 0.5),
                                        ("B", 1.0), ("B", 1.1)]):
        t = np.arange(round(seconds * SR)) / SR
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t)).astype(np.float32), SR, subtype="FLOAT")
        rows.append(Utterance(f"u{i}", str(path), ["ang", "sad", "hap", "neu"][i % 4], spk, 1, True, seconds))
    path = tmp_path / "m.csv"
    write_manifest(rows, path)
    return path


def test_the_call_is_the_speakers_utterances_in_a_seeded_order_with_exact_pauses(manifest):
    rows, _ = speaker_rows(manifest, "A")
    wave, segs = build_call(rows, pause_s=0.75, seed=3)
    again, segs_again = build_call(list(reversed(rows)), pause_s=0.75, seed=3)  # the input order does not matter
    assert segs == segs_again and np.array_equal(wave, again)
    other = [s.name for s in build_call(rows, pause_s=0.75, seed=4)[1]]
    assert sorted(other) == sorted(s.name for s in segs) == [f"u{i}" for i in range(6)] and other != [s.name for s in segs]
    by_id = {r.utterance_id: r for r in rows}
    for a, b in zip(segs, segs[1:]):
        assert b.start - a.end == pytest.approx(0.75, abs=1 / SR)
        assert not np.any(wave[round(a.end * SR): round(b.start * SR)])  # the pause is silence
    for s in segs:
        source, _ = sf.read(by_id[s.name].path, dtype="float32")
        assert s.end - s.start == pytest.approx(source.size / SR, abs=1e-9) and s.label == by_id[s.name].label
        assert np.array_equal(wave[round(s.start * SR): round(s.end * SR)], source)
    assert wave.size == round(segs[-1].end * SR) and segs[0].start == 0
    assert len(build_call(rows, 0.75, seed=3, limit=2)[1]) == 2


def test_make_call_writes_the_wav_and_references_that_match_it(manifest, tmp_path, capsys):
    out = tmp_path / "calls" / "a.wav"
    main(["make-call", "--manifest", str(manifest), "--speaker", "A", "--pause", "0.5", "--seed", "1", "--out", str(out)])
    assert "6 utterances of the speaker A" in capsys.readouterr().out
    wave, sr = sf.read(out, dtype="float32")
    csv_segs, rttm_segs = read_reference(out.with_suffix(".csv")), read_reference(out.with_suffix(".rttm"))
    assert sr == SR and len(csv_segs) == 6
    assert [(round(s.start, 3), round(s.end, 3), s.label) for s in csv_segs] == \
        [(round(s.start, 3), round(s.end, 3), s.label) for s in rttm_segs]
    assert csv_segs[-1].end == pytest.approx(wave.size / SR, abs=1e-3)
    used = read_manifest(out.with_suffix(".manifest.csv"))  # the call's utterances, in its order
    assert [r.utterance_id for r in used] == [s.name for s in csv_segs] and {r.speaker for r in used} == {"A"}
    for s in csv_segs:  # speech inside each segment, silence between them (PCM_16: within a step)
        assert np.abs(wave[round(s.start * SR) + 10: round(s.end * SR) - 10]).max() > 0.2
    for a, b in zip(csv_segs, csv_segs[1:]):
        assert np.abs(wave[round(a.end * SR) + 2: round(b.start * SR) - 2]).max() < 1e-4


def test_noise_floor_and_bad_requests(manifest, tmp_path, capsys):
    rows, _ = speaker_rows(manifest, "B")
    wave, segs = build_call(rows, 1.0, noise_dbfs=-40)
    pause = wave[round(segs[0].end * SR): round(segs[1].start * SR)]
    assert 20 * np.log10(np.sqrt(np.mean(pause.astype(np.float64) ** 2))) == pytest.approx(-40, abs=0.5)
    with pytest.raises(ManifestError, match=r"m\.csv: no utterance of speaker 'C' \(speakers: A, B\)"):
        speaker_rows(manifest, "C")
    with pytest.raises(SystemExit):
        main(["make-call", "--manifest", str(manifest), "--out", str(tmp_path / "x.wav")])
    assert "give --ckpt C, or --manifest M.csv with --speaker S" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pause must be >= 0"):
        build_call(rows, -1.0)
