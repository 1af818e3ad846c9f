"""The planted corpus (issue 11) and the attention localisation ratio measured on it."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from ser_fcn.cli import main, run_cli
from ser_fcn.corpora import demo_corpus
from ser_fcn.corpora.demo_corpus import PLANTED_BACKGROUND, PLANTED_CONTRAST, PLANTED_REGION_SECONDS, PLANTED_SECONDS, PLANTED_SPREAD_SCALE, REGIONS_NAME, read_regions
from ser_fcn.data.features import SpectrogramConfig
from ser_fcn.models import AlexNetFCN
from ser_fcn.study.attention_check import cell_fractions, check_attention, localisation_ratio, region_frames
from ser_fcn.models.receptive_field import CellGrid, encoder_grid

from helpers import fit_args

REPO = Path(__file__).resolve().parents[1]

CFG = SpectrogramConfig()  # 10 ms hop, 40 ms window at 16 kHz: frame k centred at 0.01 k + 0.02 s
ALEXNET = CellGrid(jump_f=32, centre_f=31, jump_t=32, centre_t=31)
# 320 frames -> 10 time cells; nearest-centre frames: cell 0 = 0..46, cell k = 15 + 32 k .. 46 + 32 k, cell 9 = 303..319
N_FRAMES, N_CELLS = 320, 10
CELLS_3_AND_4_S = (1.125, 1.765)  # frame centres 1.13 .. 1.76 s = frames 111 .. 174 = cells 3 and 4 exactly


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A tiny planted corpus written by the CLI; every `_synthesize` call and its output recorded."""
    calls = []
    real = demo_corpus._synthesize

    def recording(n, sr, code, spk, rng, **kwargs):
        audio = real(n, sr, code, spk, rng, **kwargs)
        calls.append({"n": n, "code": code, "kwargs": kwargs, "audio": audio})
        return audio

    out = tmp_path_factory.mktemp("planted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_corpus, "_synthesize", recording)
        main(["demo-data", "--planted", "--out", str(out), "--utterances_per_speaker", "12", "--seed", "3"])
    summary = demo_corpus.generate_demo_corpus(out, utterances_per_speaker=12, seed=3, planted=True, progress=False)
    return summary, calls


def _wav(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767.0


def test_every_labelled_utterance_has_a_region_inside_it(planted):
    summary, _ = planted
    regions = read_regions(summary.root)
    assert set(regions) == {u["utterance_id"] for u in summary.utterances}
    for u in summary.utterances:
        start, end = regions[u["utterance_id"]]
        assert PLANTED_SECONDS[0] - 1e-3 <= u["duration_s"] <= PLANTED_SECONDS[1] + 1e-3
        assert 0 < start < end < u["duration_s"]
        assert PLANTED_REGION_SECONDS[0] - 1e-3 <= end - start <= PLANTED_REGION_SECONDS[1] + 1e-3
        assert len(_wav(u["path"])) == round(u["duration_s"] * 16000)
    assert "PLANTED" in (summary.root / "DEMO_CORPUS.txt").read_text()


def test_outside_the_region_the_audio_is_the_neutral_synthesis(planted):
    """Each utterance is one neutral-profile synthesis of its full length, then one of its label's
    profile for the region; outside the region the wav is the neutral synthesis sample for sample."""
    summary, calls = planted
    assert len(calls) == 2 * len(summary.utterances)
    for u, (base, region) in zip(summary.utterances, zip(calls[::2], calls[1::2])):
        start, stop = (round(s * 16000) for s in (u["region_start_s"], u["region_end_s"]))
        assert (base["code"], base["n"]) == ("neu", round(u["duration_s"] * 16000))
        assert base["kwargs"] == {"spread_scale": PLANTED_SPREAD_SCALE}
        assert (region["code"], region["n"]) == (u["label"], stop - start)
        assert (region["kwargs"]["spread_scale"], region["kwargs"]["contrast"]) == (PLANTED_SPREAD_SCALE, PLANTED_CONTRAST)
        audio = _wav(u["path"])
        outside = np.r_[0:start, stop:len(audio)]
        np.testing.assert_allclose(audio[outside], np.clip(base["audio"][outside], -1, 1), atol=1 / 32767)
        assert not np.allclose(audio[start:stop], base["audio"][start:stop], atol=1e-3)


@pytest.mark.parametrize("code", sorted(demo_corpus._PROFILE))
def test_contrast_scales_a_profiles_distance_from_neutral_and_1_leaves_it(code):
    neutral = np.array(demo_corpus._PROFILE["neu"])
    plain = demo_corpus._profile(code, np.random.default_rng(0), spread_scale=0.0)
    np.testing.assert_array_equal(plain, demo_corpus._profile(code, np.random.default_rng(0), 0.0, contrast=1.0))
    np.testing.assert_allclose(demo_corpus._profile(code, np.random.default_rng(0), 0.0, contrast=PLANTED_CONTRAST) - neutral,
                               PLANTED_CONTRAST * (plain - neutral))


def test_ordinary_corpora_keep_their_parameters(tmp_path):
    s = demo_corpus.generate_demo_corpus(tmp_path, utterances_per_speaker=4, progress=False)
    marker = json.loads((s.root / demo_corpus.MARKER_NAME).read_text())
    assert "planted" not in marker["params"] and not (s.root / REGIONS_NAME).exists()


def test_a_broken_sidecar_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / REGIONS_NAME)):
        read_regions(tmp_path)
    (tmp_path / REGIONS_NAME).write_text("utterance_id,label,start_s,end_s,duration_s\nSes01F_x_F000,neu,zero\n")
    with pytest.raises(ValueError, match=f"{REGIONS_NAME}, line 2"):
        read_regions(tmp_path)


# --- the ratio --------------------------------------------------------------------------------


def test_region_frames_are_those_whose_centre_lies_inside():
    inside = region_frames(*CELLS_3_AND_4_S, N_FRAMES, CFG)
    assert np.flatnonzero(inside).tolist() == list(range(111, 175))


def test_cells_come_from_the_encoder_grid():
    assert encoder_grid(AlexNetFCN()) == ALEXNET
    fractions = cell_fractions(region_frames(*CELLS_3_AND_4_S, N_FRAMES, CFG), N_CELLS, ALEXNET)
    assert fractions.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    # the same frames on a grid whose cells sit 16 frames later (cell k = 31 + 32 k .. 62 + 32 k):
    # the second half of cell 2, all of cell 3, the first half of cell 4
    shifted = CellGrid(jump_f=32, centre_f=31, jump_t=32, centre_t=47)
    assert cell_fractions(region_frames(*CELLS_3_AND_4_S, N_FRAMES, CFG), N_CELLS, shifted).tolist() == \
        [0, 0, 0.5, 1, 0.5, 0, 0, 0, 0, 0]


def test_uniform_attention_gives_one():
    fractions = cell_fractions(region_frames(0.7, 1.9, N_FRAMES, CFG), N_CELLS, ALEXNET)
    assert localisation_ratio(np.full((5, N_CELLS), 1 / (5 * N_CELLS)), fractions) == pytest.approx(1.0)


def test_attention_inside_the_region_gives_one_over_its_share():
    fractions = cell_fractions(region_frames(*CELLS_3_AND_4_S, N_FRAMES, CFG), N_CELLS, ALEXNET)
    alpha = np.zeros((5, N_CELLS))
    alpha[:, 3], alpha[1, 4] = 0.1, 0.5  # all the mass in cells 3 and 4, spread over frequency
    assert localisation_ratio(alpha, fractions) == pytest.approx(1 / 0.2)
    alpha[:] = 0
    alpha[2, 3], alpha[2, 7] = 0.5, 0.5  # half inside
    assert localisation_ratio(alpha, fractions) == pytest.approx(0.5 / 0.2)
    half_cell = cell_fractions(region_frames(1.125, 1.285, N_FRAMES, CFG), N_CELLS, ALEXNET)  # frames 111..126: half of cell 3
    alpha[:] = 0
    alpha[0, 3] = 1.0
    assert localisation_ratio(alpha, half_cell) == pytest.approx(0.5 / 0.05)
    with pytest.raises(ValueError, match="time cells"):
        localisation_ratio(np.ones((5, N_CELLS - 1)), fractions)


def test_mean_pooling_checkpoint_measures_exactly_uniform(planted, tmp_path):
    """End to end on a checkpoint: lambda = 0 gives every cell the same weight, so ratio 1.0."""
    summary, _ = planted
    run_dir = tmp_path / "fit"
    run_cli(["fit", *fit_args(summary.root, run_dir, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                              "--trainer.logger", "false", "--model.net.init_args.lam", "0.0", "--test_after_fit", "false")])
    ckpt = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    result = check_attention(ckpt, summary.root.parent)
    assert result["utterances"] and result["lam"] == 0.0
    assert [r["ratio"] for r in result["utterances"]] == pytest.approx([1.0] * len(result["utterances"]))
    assert all(0 < r["region_share"] < 1 for r in result["utterances"])


def test_a_constant_answer_is_flagged():
    from ser_fcn.study.attention_study import constant_answer

    assert constant_answer({"confusion_matrix": [[3, 0, 0], [2, 0, 0], [1, 0, 0]]})
    assert not constant_answer({"confusion_matrix": [[3, 0, 0], [1, 1, 0], [1, 0, 0]]})



def test_the_study_trains_each_model_with_its_table_experiment_and_the_cpu_profiles(tmp_path, monkeypatch, capsys):
    """`train` builds a `fit` command that the real CLI accepts (the tables' experiment, then the
    CPU profiles, the planted corpus, fold 1), records the wall time and
    does not retrain a finished model."""
    from ser_fcn.study import attention_study

    commands = []

    def fake_launch(cmd, log, echo=False):
        commands.append(cmd)
        run_dir = Path(cmd[cmd.index("--run_dir") + 1])
        (run_dir / "results.json").write_text(json.dumps({"wa": 0.5, "ua": 0.5, "confusion_matrix": [[1, 0], [0, 1]]}))
        return 0

    monkeypatch.setattr(attention_study, "launch_fold", fake_launch)
    monkeypatch.chdir(REPO)
    corpus = tmp_path / "corpus" / "IEMOCAP_full_release"
    result = attention_study.train("fcn_meanpool", tmp_path, corpus, fold=1, echo=False)
    assert result["ua"] == 0.5 and result["wall_s"] >= 0 and len(commands) == 1
    attention_study.train("fcn_meanpool", tmp_path, corpus, fold=1, echo=False)
    assert len(commands) == 1  # done before: not retrained
    cmd = commands[0]
    configs = [cmd[i + 1] for i, w in enumerate(cmd) if w == "--config"]
    assert configs == ["experiments/fcn_meanpool.yaml", *attention_study.PROFILES]
    with pytest.raises(SystemExit):
        run_cli([w for w in cmd[cmd.index("fit"):] if w != "--run_dir" and w != str(tmp_path / "fcn_meanpool")]
                + ["--print_config"])
    printed = capsys.readouterr().out
    assert f"root: {corpus}" in printed and "lam: 0.0" in printed and "fold: 1" in printed
    # cpu_planted.yaml over cpu.yaml: a fixed 20 epochs, the one checkpoint the latest epoch's
    assert "max_epochs: 20" in printed and "EarlyStopping" not in printed
    assert printed.count("class_path: lightning.pytorch.callbacks.ModelCheckpoint") == 1 and "monitor: null" in printed
    assert "class_weighted_loss: true" in printed  # the rest of the cpu recipe stays


def test_the_study_writes_paths_relative_to_the_working_folder(tmp_path):
    """The committed results/attention_check.{md,json} name no folder of the machine that ran them."""
    from ser_fcn.study.attention_study import portable

    base = tmp_path / "repo"
    record = {"ckpt_path": f"{base}/runs/a/last.ckpt", "command": f"python fit --data.root {base}/runs/corpus --x 1",
              "elsewhere": "/data/IEMOCAP", "n": 3, "classes": [f"{base}/c", "ang"], "nested": {"corpus": str(base / "d")}}
    out = portable(record, base)
    assert out == {"ckpt_path": "runs/a/last.ckpt", "command": "python fit --data.root runs/corpus --x 1",
                   "elsewhere": "/data/IEMOCAP", "n": 3, "classes": ["c", "ang"], "nested": {"corpus": "d"}}
    assert str(base) not in json.dumps(out)


def test_the_summaries_leave_neutral_out_of_the_emotional_figure_and_count_only_correct_ones_per_class():
    """A neutral utterance's region sounds like its background: it counts in "correct" but not in
    "correct_emotional"; per-class figures take only the correct utterances of that class."""
    from ser_fcn.study.attention_check import summaries

    records = [{"label": "ang", "correct": True, "ratio": 3.0}, {"label": "ang", "correct": True, "ratio": 5.0},
               {"label": "ang", "correct": False, "ratio": 9.0}, {"label": PLANTED_BACKGROUND, "correct": True, "ratio": 1.0},
               {"label": "sad", "correct": False, "ratio": 0.5}]
    out = summaries(records, ["neu", "hap", "sad", "ang"])
    assert out["correct"] == {"n": 3, "median": 3.0, "mean": 3.0}
    assert out["correct_emotional"] == {"n": 2, "median": 4.0, "mean": 4.0}
    assert out["correct_per_class"]["ang"]["n"] == 2 and out["correct_per_class"][PLANTED_BACKGROUND]["median"] == 1.0
    assert out["correct_per_class"]["sad"] == {"n": 0, "median": None, "mean": None}
    assert list(out["correct_per_class"]) == ["neu", "hap", "sad", "ang"] and out["all"]["n"] == 5
