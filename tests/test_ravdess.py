"""RAVDESS reader (generated layout: audio-only speech kept, song and video left out, unknown
names listed), 48 kHz stereo read as 16 kHz mono, and `cv` over every fold of its 12 sessions."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from named_corpora import ravdess_name, tone, write_ravdess
from ser_fcn.cli import main
from ser_fcn.corpora import ravdess
from ser_fcn.corpora.audio import SAMPLE_RATE, load_audio
from ser_fcn.corpora.folds import make_fold
from ser_fcn.data.datamodule import SERDataModule
from ser_fcn.study import crossval, cv_plan

REPO = Path(__file__).resolve().parents[1]
LEGEND = {1: "neu", 2: "cal", 3: "hap", 4: "sad", 5: "ang", 6: "fea", 7: "dis", 8: "sur"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ravdess")
    return root, write_ravdess(root)


def test_audio_only_speech_becomes_rows_of_eight_classes_and_twelve_actor_pairs(corpus):
    root, written = corpus
    rows, summary = ravdess.read_ravdess(root, progress=False)
    assert ravdess.CLASSES == ("neu", "hap", "sad", "ang", "cal", "fea", "dis", "sur") and ravdess.EMOTIONS == LEGEND
    assert len(rows) == len(written) == 24 * 8 and summary.kept == len(rows)
    assert Counter(r.label for r in rows) == {c: 24 for c in LEGEND.values()}
    assert {r.speaker: r.session for r in rows} == {f"{a:02d}": (a + 1) // 2 for a in range(1, 25)}
    r = next(r for r in rows if r.utterance_id == "03-01-05-01-01-01-07")
    assert r.label == "ang" and r.speaker == "07" and r.session == 4 and Path(r.path).parent.name == "Actor_07"
    assert r.duration_s == pytest.approx(0.3, abs=1e-3)  # from the 48 kHz header


def test_song_and_video_are_left_out_and_counted_unknown_names_listed(corpus, tmp_path):
    root = tmp_path / "ravdess"
    write_ravdess(root, actors=2, emotions=(1, 5))
    actor = root / "Actor_01"
    tone(actor / f"{ravdess_name(1, 3, channel=2)}.wav", 300, sr=48000)  # song
    tone(root / "Actor_02" / f"{ravdess_name(2, 3, channel=2, repetition=2)}.wav", 300, sr=48000)  # song
    (actor / f"{ravdess_name(1, 3, modality=1)}.mp4").write_bytes(b"video")  # full AV
    (actor / f"{ravdess_name(1, 3, modality=2)}.mp4").write_bytes(b"video")  # video-only
    odd = {f"{ravdess_name(1, 9)}.wav": "emotion 09 is outside 01..08",
           f"{ravdess_name(7, 3)}.wav": "actor 07 in the name but the file is in Actor_01",
           "03-01-03-01-01-01.wav": "not a RAVDESS name", "take2.wav": "not a RAVDESS name",
           f"{ravdess_name(1, 3, modality=4)}.wav": "modality 04 is outside 01..03"}
    for name in odd:
        tone(actor / name, 200, sr=48000)
    (actor / "notes.txt").write_text("not audio")
    rows, summary = ravdess.read_ravdess(root, progress=False)
    assert len(rows) == 4 and {r.label for r in rows} == {"neu", "ang"}
    assert summary.left_out == Counter({"song (vocal channel 02)": 2, "video (full audio-video)": 1, "video (video-only)": 1})
    assert summary.audio_files == 4 + 2 + 2 + len(odd)
    assert len(summary.unknown_names) == len(odd)
    for name, why in odd.items():
        assert any(line.startswith(str(actor / name) + ":") and why in line for line in summary.unknown_names)
    report = summary.report()
    assert "left out by the protocol: song (vocal channel 02) 2, video (full audio-video) 1, video (video-only) 1" in report
    assert f"LEFT OUT {len(odd)} file(s)" in report
    sub, sub_summary = ravdess.read_ravdess(root, ["ang"], progress=False)
    assert [r.label for r in sub] == ["ang", "ang"] and sub_summary.excluded_class == Counter({"neu": 2})
    (tmp_path / "void").mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        ravdess.read_ravdess(tmp_path / "void", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ravdess.read_ravdess(tmp_path / "nowhere", progress=False)


def test_48khz_stereo_is_read_as_16khz_mono_the_channel_mean(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.5 * 48000)) / 48000
    left = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 330 * t)
    path = tmp_path / "stereo48.wav"
    sf.write(str(path), np.stack([left, right], 1).astype(np.float32), 48000, subtype="FLOAT")
    wave = load_audio(path)
    expected = AF.resample(torch.from_numpy(((left + right) / 2).astype(np.float32)), 48000, SAMPLE_RATE)
    assert wave.ndim == 1 and wave.shape[0] == int(0.5 * SAMPLE_RATE)
    assert torch.allclose(wave, expected, atol=1e-5)
    mono16 = tmp_path / "mono16.wav"  # the same signal recorded at 16 kHz: the same samples, but for resampling error
    t16 = np.arange(int(0.5 * 16000)) / 16000
    sf.write(str(mono16), (0.2 * np.sin(2 * np.pi * 220 * t16) + 0.1 * np.sin(2 * np.pi * 330 * t16)).astype(np.float32),
             16000, subtype="FLOAT")
    clean = tmp_path / "clean48.wav"
    sf.write(str(clean), np.stack([0.4 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1)
             .astype(np.float32), 48000, subtype="FLOAT")
    a, b = load_audio(clean)[200:-200], load_audio(mono16)[200:-200]  # edges: the resampling filter's tails
    assert torch.max(torch.abs(a - b)) < 0.01


def test_data_corpus_ravdess_caches_16khz_features_of_48khz_files(corpus, tmp_path):
    dm = SERDataModule(root=str(corpus[0]), corpus="ravdess", fold=12, swap_speakers=True, progress=False,
                       cache_dir=str(tmp_path))
    dm.prepare_data()
    dm.setup()
    assert dm.classes == list(ravdess.CLASSES) and dm.corpus_name == "RAVDESS"
    assert (dm.split.val_speaker, dm.split.test_speaker) == ("24", "23")
    frames = {dm.cache.load(r.path).shape[1] for r in dm.rows}
    assert frames == {dm.cache.load(dm.rows[0].path).shape[1]} and 25 <= frames.pop() <= 31  # 0.3 s at a 10 ms hop


class RecordingFit:
    """Stands in for a fold's `fit`: records (fold, swap) and writes a results.json."""

    def __init__(self):
        self.runs: list[tuple[int, bool]] = []

    def __call__(self, cmd, log, echo=False):
        run_dir = Path(cmd[cmd.index("--run_dir") + 1])
        fold, swap = int(cmd[cmd.index("--data.fold") + 1]), cmd[cmd.index("--data.swap_speakers") + 1] == "true"
        self.launches = getattr(self, "launches", 0) + 1
        served = [(run_dir, swap)]
        if "--swap_run_dir" in cmd:  # one training run serves the fold and its swap
            served.append((Path(cmd[cmd.index("--swap_run_dir") + 1]), not swap))
        for folder, swapped in served:
            self.runs.append((fold, swapped))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "results.json").write_text(json.dumps({
                "fold": fold, "swap_speakers": swapped, "wa": 1.0, "ua": 1.0, "n_utterances": 2, "classes": ["neu", "ang"],
                "confusion_matrix": [[1, 0], [0, 1]], "corpus": "RAVDESS", "merge_exc": False}))
        return 0


def test_cv_runs_every_fold_of_a_twelve_session_corpus_each_actor_tested_once(corpus, tmp_path, monkeypatch):
    fit = RecordingFit()
    monkeypatch.setattr(crossval, "launch_fold", fit)
    args = ["cv", "--config", str(REPO / "experiments" / "fcn_attn_random.yaml"), "--data.corpus", "ravdess",
            "--data.root", str(corpus[0]), "--out", str(tmp_path / "cv")]
    main(args)
    assert sorted(fit.runs) == [(k, s) for k in range(1, 13) for s in (False, True)] and fit.launches == 12
    agg = json.loads((tmp_path / "cv" / "aggregate.json").read_text())
    assert agg["n_runs"] == 24 and agg["complete"]
    rows, _ = ravdess.read_ravdess(corpus[0], progress=False)
    tested = [make_fold(rows, k, swap).test_speaker for k, swap in fit.runs]
    assert sorted(tested) == [f"{a:02d}" for a in range(1, 25)]  # leave one actor out, every actor once

    fit.runs.clear()
    main(args[:-1] + [str(tmp_path / "only"), "--only", "3", "12"])
    assert fit.runs == [(3, False), (3, True), (12, False), (12, True)]
    with pytest.raises(SystemExit, match=r"--folds 10: use 12 \(one per session\) or 24"):
        main(args[:-1] + [str(tmp_path / "bad"), "--folds", "10"])
    with pytest.raises(SystemExit, match=r"--only \[13\]: folds are 1..12"):
        main(args[:-1] + [str(tmp_path / "bad2"), "--only", "13"])
    assert cv_plan.corpus_sessions([], ["--data.corpus", "ravdess", "--data.root", str(corpus[0])]) == (12, True)
    assert cv_plan.corpus_sessions([], []) == (cv_plan.N_SESSIONS, False)  # IEMOCAP / the demo corpus
