"""`evaluate`: a checkpoint scored on a labelled corpus, against `test` and sklearn."""

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from ser_fcn.cli import main
from ser_fcn.corpora.iemocap import read_iemocap
from ser_fcn.corpora.manifest import write_manifest
from ser_fcn.inference.evaluate import parse_label_map, scores

from deploy_helpers import tiny_checkpoint


@pytest.fixture(scope="module")
def fitted(demo_corpus, tmp_path_factory):
    return tiny_checkpoint(demo_corpus, tmp_path_factory)


def test_the_test_speaker_gets_the_wa_and_ua_of_test(fitted, demo_corpus, tmp_path, capsys):
    ckpt, run_dir = fitted
    results = json.loads((run_dir / "results.json").read_text())  # `test` of the best checkpoint on fold 1
    out = tmp_path / "report.json"
    main(["evaluate", "--ckpt", str(ckpt), "--root", str(demo_corpus.root), "--out", str(out)])
    rep = json.loads(out.read_text())
    test_speaker = results["test_speaker"]
    spk = rep["per_speaker"][test_speaker]
    assert spk["n"] == results["n_utterances"]
    assert spk["wa"] == pytest.approx(results["wa"], abs=1e-6) and spk["ua"] == pytest.approx(results["ua"], abs=1e-6)
    assert np.array(spk["confusion_matrix"]).tolist() == results["confusion_matrix"]
    # every code of the corpus is either scored or listed, never guessed
    assert rep["n"] + rep["n_outside_classes"] + rep["n_unreadable"] == sum(1 for u in demo_corpus.utterances if u["improvised"])
    assert set(rep["outside_classes"]) and not set(rep["outside_classes"]) & set(rep["classes"])
    assert sum(s["n"] for s in rep["per_session"].values()) == sum(s["n"] for s in rep["per_speaker"].values()) == rep["n"]
    assert "not scored, label outside" in capsys.readouterr().out


def test_a_manifest_with_a_label_map_and_a_broken_file(fitted, demo_corpus, tmp_path, capsys):
    ckpt, run_dir = fitted
    rows = read_iemocap(demo_corpus.root, progress=False)[0][:30]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEnope")
    rows[0] = type(rows[0])(**{**rows[0].__dict__, "path": str(broken)})
    rows[1] = type(rows[1])(**{**rows[1].__dict__, "label": "happy"})
    rows[2] = type(rows[2])(**{**rows[2].__dict__, "label": "disgust"})
    write_manifest(rows, tmp_path / "m.csv")
    out = tmp_path / "r.json"
    main(["evaluate", "--ckpt", str(ckpt), "--manifest", str(tmp_path / "m.csv"), "--label_map", "happy=hap", "--out", str(out)])
    rep = json.loads(out.read_text())
    assert rep["n_unreadable"] == 1 and "broken.wav" in rep["unreadable"][0]
    assert rep["outside_classes"] == {"disgust": 1}
    assert rep["n"] == 28
    assert rep["ua"] == pytest.approx(rep["balanced_accuracy_check"], abs=1e-12)


def test_scores_follow_their_definitions():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.integers(0, 3, 40)  # class 3 never in the reference: UA leaves it out
        p = rng.integers(0, 4, 40)
        s = scores(y, p, ["a", "b", "c", "d"])
        assert s["ua"] == pytest.approx(balanced_accuracy_score(y, p), abs=1e-12)
        cm = np.array(s["confusion_matrix"])
        assert cm.sum() == 40 and s["wa"] == pytest.approx(np.trace(cm) / 40)
        assert set(s["recall_per_class"]) == {"abc"[c] for c in set(y.tolist())}


def test_label_map_syntax():
    assert parse_label_map("exc=hap, fru = ang") == {"exc": "hap", "fru": "ang"}
    assert parse_label_map(None) == {}
    with pytest.raises(ValueError, match="FROM=TO"):
        parse_label_map("exc")
