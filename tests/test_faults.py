"""Nothing lost under faults: kill and resume, deterministic reruns, a cache that two
processes build at once, and fuzzed parsers. (Cache corruption, leakage, NaN, silence and
files changed after the manifest are tested beside their code: see docs/design.md, "Tests".)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_fcn.cli import run_cli
from ser_fcn.data.collate import lengths_to_mask, pad_collate
from ser_fcn.data.features import FeatureCache
from ser_fcn.corpora.iemocap import LabelFileError, parse_label_file

from helpers import REPO, fit_args


@pytest.mark.slow  # a subprocess-heavy end-to-end run: `make test-slow` (CI runs it)
def test_fit_killed_mid_epoch_resumes_to_the_configured_epoch_count(demo_corpus, tmp_path):
    """Fault: SIGKILL during epoch 2 of 3. Resume with --ckpt_path last must end at
    epoch 3 with one history entry per epoch, none lost or repeated."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = fit_args(demo_corpus.root, run_dir, "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "6",
                    "--test_after_fit", "false")
    proc = subprocess.Popen([sys.executable, "-m", "ser_fcn", "fit", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next epoch
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=False)
    assert killed_at["epoch"] < 3  # killed before the end

    resumed = subprocess.run([sys.executable, "-m", "ser_fcn", "fit", *args, "--ckpt_path", "last", "--test_after_fit", "true"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert [h["epoch"] for h in final["ser_fcn_history"]] == [0, 1, 2]
    per_epoch = killed_at["global_step"] // len(killed_at["ser_fcn_history"])
    assert final["global_step"] == 3 * per_epoch  # no optimizer step lost or repeated
    history = json.loads((run_dir / "results.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[: len(killed_at["ser_fcn_history"])] == killed_at["ser_fcn_history"]


def test_same_config_and_seed_give_the_same_test_figures(demo_corpus, tmp_path):
    """Fault: hidden nondeterminism (unseeded shuffling, dropout, algorithms)."""
    figures = []
    for i in range(2):
        run_cli(["fit", *fit_args(demo_corpus.root, tmp_path / f"r{i}", "--trainer.max_epochs", "1",
                                  "--trainer.limit_train_batches", "3", "--trainer.deterministic", "true")])
        r = json.loads((tmp_path / f"r{i}" / "results.json").read_text())
        figures.append((r["wa"], r["ua"], r["confusion_matrix"], r["history"]))
    assert figures[0] == figures[1], f"run 1: {figures[0]}\nrun 2: {figures[1]}"


_BUILDER = """
import sys, time
from pathlib import Path
from ser_fcn.data.features import FeatureCache
root, go, wavs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
while not go.exists():  # start together, to collide on the same entries
    time.sleep(0.01)
cache = FeatureCache(root)
for w in wavs:
    cache.build(w)
"""


def test_two_processes_building_one_cache_leave_it_whole(tmp_path):
    """Fault: concurrent writers of the same entries (two training jobs on one cache)."""
    wavs = []
    for i in range(8):
        t = np.arange(16000 + 1600 * i) / 16000
        sf.write(tmp_path / f"{i}.wav", 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t), 16000, subtype="PCM_16")
        wavs.append(str(tmp_path / f"{i}.wav"))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(tmp_path / "cache"), str(go), *wavs], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    cache = FeatureCache(tmp_path / "cache")
    for w in wavs:
        stored = cache.entry_path(w).read_bytes()
        assert np.array_equal(cache.load(w), cache.compute(w).numpy().astype(np.float16))
        assert cache.entry_path(w).read_bytes() == stored  # loaded as it was: whole, not rebuilt
    assert not list((tmp_path / "cache").rglob("*.tmp"))


_LINE_PARTS = st.sampled_from(["[", "]", " - ", "\t", "Ses01F_impro01_F000", "neu", "joy", "1.5", "-2", "[2.5, 3, 1]", "\n", "%", "C-E2:", "é", "\x00"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(), st.lists(_LINE_PARTS, max_size=30).map("".join)))
def test_label_parser_on_arbitrary_text_fails_only_with_its_own_error(text):
    """Fault: any malformed label file. Only LabelFileError (naming file:line) may escape."""
    try:
        lines = parse_label_file(Path("Ses01F_impro01.txt"), text=text)
    except LabelFileError as e:
        assert str(e).startswith("Ses01F_impro01.txt:")
    else:
        for ll in lines:
            assert ll.end_s >= ll.start_s and ll.code in {"neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx"}


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(1, 400), min_size=1, max_size=12), bins=st.integers(1, 8))
def test_collate_masks_agree_with_lengths(lengths, bins):
    """Fault: padding mistaken for speech. x is zero exactly beyond each length."""
    items = [{"features": torch.rand(bins, n) + 0.1, "label": i % 4, "utt_index": i, "utterance_id": f"u{i}"}
             for i, n in enumerate(lengths)]
    b = pad_collate(items)
    mask = lengths_to_mask(b["lengths"], b["x"].shape[-1])
    assert b["x"].shape == (len(lengths), 1, bins, max(lengths))
    assert b["lengths"].tolist() == lengths
    assert torch.equal(mask, (b["x"][:, 0] != 0).all(dim=1))
