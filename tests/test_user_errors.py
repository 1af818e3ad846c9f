"""A mistake in the user's input is one `error: <file>: <problem>` line and a non-zero exit, no
traceback (`--debug` / SER_FCN_DEBUG=1 show it); a bug keeps its traceback (ser_fcn/utils/errors.py)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from ser_fcn import cli
from ser_fcn.corpora.iemocap import read_iemocap
from ser_fcn.corpora.manifest import COLUMNS, ManifestError
from ser_fcn.data.datamodule import SERDataModule
from tests.helpers import REPO


@pytest.fixture(scope="module")
def rows(demo_corpus):
    return [r.__dict__ for r in read_iemocap(demo_corpus.root, progress=False)[0]]


def _write(path, rows, columns=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _fit(run_dir, *data, config="fcn_attn_random.yaml"):
    return ["fit", "--config", str(REPO / "experiments" / config), *data, "--data.progress", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.max_epochs", "1",
            "--run_dir", str(run_dir)]


def _one_error_line(argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    message = e.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message  # SystemExit(str): Python prints it to stderr and exits with status 1


def test_a_missing_column_names_the_manifest_and_the_column(rows, tmp_path):
    m = _write(tmp_path / "m.csv", rows, [c for c in COLUMNS if c != "duration_s"])
    message = _one_error_line(_fit(tmp_path / "r", "--data.manifest", str(m)))
    assert f"{m}: missing column(s) duration_s" in message
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_a_duplicate_id_names_the_manifest_and_the_id(rows, tmp_path):
    m = _write(tmp_path / "m.csv", [*rows, rows[3]])
    message = _one_error_line(_fit(tmp_path / "r", "--data.manifest", str(m)))
    assert f"{m}: duplicate utterance_id(s): {rows[3]['utterance_id']}" in message


def test_a_label_outside_the_classes_names_the_manifest_and_the_label(rows, tmp_path):
    m = _write(tmp_path / "m.csv", [*rows[:-1], {**rows[-1], "label": "joy"}])
    message = _one_error_line(_fit(tmp_path / "r", "--data.manifest", str(m)))
    assert str(m) in message and "outside the class list" in message and "joy (1)" in message


def test_a_row_whose_wav_is_missing_names_the_wav(rows, tmp_path):
    gone = tmp_path / "gone.wav"
    m = _write(tmp_path / "m.csv", [*rows[:-1], {**rows[-1], "path": str(gone)}])
    message = _one_error_line(_fit(tmp_path / "r", "--data.manifest", str(m), "--data.cache_dir", str(tmp_path / "c")))
    assert f"{gone}: file not found" in message


def test_a_missing_corpus_folder_and_contradicting_settings(tmp_path):
    nowhere = tmp_path / "nowhere"
    assert f"data.root {nowhere}: no such folder" in _one_error_line(_fit(tmp_path / "r", "--data.root", str(nowhere)))
    both = _one_error_line(_fit(tmp_path / "r", "--data.root", str(nowhere), "--data.manifest", "m.csv"))
    assert "not both" in both
    emodb = _one_error_line(_fit(tmp_path / "r", "--data.corpus", "emodb", "--data.root", str(nowhere)))
    assert f"EmoDB root {nowhere} does not exist" in emodb
    assert "not a corpus this package reads" in _one_error_line(
        _fit(tmp_path / "r", "--data.corpus", "emodbb", "--data.root", str(nowhere)))


def test_a_bad_weights_file_names_the_file(demo_corpus, tmp_path):
    bad = tmp_path / "alexnet.pth"
    bad.write_bytes(b"not a state dict")
    message = _one_error_line(_fit(tmp_path / "r", "--data.root", str(demo_corpus.root),
                                   "--model.net.init_args.weights", str(bad), config="fcn_attn.yaml"))
    assert f"{bad} is not a readable PyTorch state dict" in message and "--model.net.init_args.weights null" in message


def test_debug_shows_the_traceback(rows, tmp_path, monkeypatch):
    m = _write(tmp_path / "m.csv", [*rows, rows[0]])
    with pytest.raises(ManifestError, match="duplicate"):
        cli.main([*_fit(tmp_path / "r", "--data.manifest", str(m)), "--debug"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ManifestError, match="duplicate"):
        cli.main(_fit(tmp_path / "r2", "--data.manifest", str(m)))


def test_a_bug_keeps_its_traceback(demo_corpus, tmp_path, monkeypatch):
    def bug(self):
        return {}["no such key"]

    monkeypatch.setattr(SERDataModule, "prepare_data", bug)
    with pytest.raises(KeyError, match="no such key"):
        cli.main(_fit(tmp_path / "r", "--data.root", str(demo_corpus.root)))


def test_the_user_sees_one_line_and_no_traceback(rows, tmp_path):
    """The same, as a user runs it: a fresh process, its stderr and exit status."""
    m = _write(tmp_path / "m.csv", [*rows, rows[2]])
    env = {k: v for k, v in os.environ.items() if k != cli.DEBUG_ENV}
    done = subprocess.run([sys.executable, "-m", "ser_fcn", *_fit(tmp_path / "r", "--data.manifest", str(m))],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {m}: duplicate utterance_id(s): {rows[2]['utterance_id']}"]
    assert done.stderr.rstrip().endswith(errors[0])


def test_spectrogram_settings_the_dft_cannot_give_are_one_line(tmp_path):
    assert "data.n_bins / data.mel: n_bins=500 exceeds the 401 bins" in _one_error_line(
        _fit(tmp_path / "r", "--data.n_bins", "500"))
    assert "mel filters are too narrow" in _one_error_line(_fit(tmp_path / "r", "--data.mel", "true", "--data.n_bins", "400"))
    assert "data.n_bins 40: FCNAttention needs at least 63 spectrogram rows" in _one_error_line(
        _fit(tmp_path / "r", "--data.mel", "true", "--data.n_bins", "40"))
