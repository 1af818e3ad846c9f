"""evaluate-timeline: EDER (Wang et al. 2023, SpeechBrain's EDER.py), the per-utterance
majority agreement, and the reference / timeline readers."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_fcn.cli import main
from ser_fcn.inference.call import Segment, segments_csv, segments_rttm
from ser_fcn.inference.timeline import PAUSE
from ser_fcn.inference.timeline_eval import (
    ReferenceError, eder, majority_agreement, predicted_intervals, read_reference, read_timeline,
)


def win(start, end, label, p=None):
    return {"start": start, "end": end, "label": label,
            "probabilities": None if label == PAUSE else {label: 0.9 if p is None else p}}


REF = [Segment(0.0, 2.0, "ang", "u1"), Segment(3.0, 5.0, "sad", "u2")]  # pauses 2-3 s and after 5 s


def test_eder_of_a_hand_checked_case():
    tl = [win(0, 1, "ang"), win(1, 2, "hap"), win(2, 3, PAUSE), win(3, 5.5, "sad"), win(5.5, 6, PAUSE)]
    r = eder(tl, REF)
    # 4 s of speech: 1 s given the wrong label (hap), 0.5 s of emotion in the pause after 5 s
    assert r["speech_s"] == 4.0
    assert r["wrong_label"] == pytest.approx(0.25) and r["missed"] == pytest.approx(0.0)
    assert r["false_alarm"] == pytest.approx(0.125) and r["eder"] == pytest.approx(0.375)


def test_eder_matches_speechbrains_docstring_example():
    """SpeechBrain: prediction n n n a a a, windows of 0.2 s every 0.2 s, duration 1.22 s,
    angry 0.39-1.10 s (neutral elsewhere) -> 0.2704918032786885."""
    tl = [win(0.2 * i, 0.2 * i + 0.2, lab) for i, lab in enumerate("nnnaaa")]
    ref = [Segment(0, 0.39, "n"), Segment(0.39, 1.10, "a"), Segment(1.10, 1.22, "n")]
    assert eder(tl, ref)["eder"] == pytest.approx(0.2704918032786885)


def test_overlapping_windows_of_two_labels_share_the_overlap_at_its_middle():
    assert predicted_intervals([win(0, 2, "ang"), win(1, 3, "sad")]) == [(0, 1.5, "ang"), (1.5, 3, "sad")]
    assert predicted_intervals([win(0, 2, "ang"), win(1, 3, "ang"), win(4, 5, "ang")]) == [(0, 3, "ang"), (4, 5, "ang")]
    r = eder([win(0, 2, "ang"), win(1, 3, "sad")], [Segment(0, 3, "ang")])
    assert r["wrong_label"] == pytest.approx(0.5) and r["missed"] == pytest.approx(0)


def test_perfect_timeline_scores_zero_and_all_pause_misses_everything():
    perfect = [win(0, 2, "ang"), win(2, 3, PAUSE), win(3, 5, "sad"), win(5, 6, PAUSE)]
    assert eder(perfect, REF)["eder"] == pytest.approx(0.0)
    silent = [win(0, 6, PAUSE)]
    r = eder(silent, REF)
    assert r["missed"] == pytest.approx(1.0) and r["eder"] == pytest.approx(1.0)
    assert r["wrong_label"] == 0 and r["false_alarm"] == 0
    assert eder([], REF)["missed"] == pytest.approx(1.0)  # no window at all: missed as well


def _tiles(cuts, labels):
    return [win(a, b, lab) for a, b, lab in zip(cuts, cuts[1:], labels)]


@settings(max_examples=60, deadline=None)
@given(ref_cuts=st.lists(st.integers(0, 200), min_size=2, max_size=12, unique=True),
       ref_labels=st.lists(st.sampled_from(["a", "b", PAUSE]), min_size=11, max_size=11),
       pred_cuts=st.lists(st.integers(0, 200), min_size=2, max_size=12, unique=True),
       pred_labels=st.lists(st.sampled_from(["a", "b", "c", PAUSE]), min_size=11, max_size=11))
def test_eder_components_sum_and_match_a_count_on_a_fine_grid(ref_cuts, ref_labels, pred_cuts, pred_labels):
    """Non-overlapping windows (tiles) against any reference: the components, counted on a
    1 ms grid, are the ones computed; they sum to EDER."""
    rc, pc = sorted(ref_cuts), sorted(pred_cuts)
    ref = [Segment(a / 100, b / 100, lab) for a, b, lab in zip(rc, rc[1:], ref_labels) if lab != PAUSE]
    if not ref:
        return
    tl = _tiles([c / 100 for c in pc], pred_labels)
    r = eder(tl, ref)
    assert r["eder"] == pytest.approx(r["wrong_label"] + r["missed"] + r["false_alarm"])
    t = (np.arange(0, 2000) + 0.5) / 1000
    ref_at = np.full(t.size, PAUSE, dtype=object)
    for s in ref:
        ref_at[(t >= s.start) & (t < s.end)] = s.label
    pred_at = np.full(t.size, PAUSE, dtype=object)
    for w in tl:
        pred_at[(t >= w["start"]) & (t < w["end"])] = w["label"]
    speech = (ref_at != PAUSE).sum()
    assert r["missed"] == pytest.approx(((ref_at != PAUSE) & (pred_at == PAUSE)).sum() / speech, abs=1e-9)
    assert r["false_alarm"] == pytest.approx(((ref_at == PAUSE) & (pred_at != PAUSE)).sum() / speech, abs=1e-9)
    wrong = (ref_at != PAUSE) & (pred_at != PAUSE) & (ref_at != pred_at)
    assert r["wrong_label"] == pytest.approx(wrong.sum() / speech, abs=1e-9)


def test_majority_agreement_counts_windows_centred_inside_each_segment():
    tl = [win(0, 1, "ang"), win(0.5, 1.5, "hap"), win(1, 2, "ang"),  # u1: ang 2 of 3
          win(1.8, 3.2, "sad"),  # centre 2.5: in the pause, counted nowhere
          win(3, 4, "hap", 0.6), win(4, 5, "sad", 0.9)]  # u2: a tie, broken by probability: sad
    m = majority_agreement(tl, REF)
    assert m["correct"] == 2 and m["agreement"] == 1.0
    assert [r["windows"] for r in m["per_segment"]] == [3, 2]
    m = majority_agreement([win(0, 2, "ang")], REF)  # u2 has no window: wrong, and said so
    assert m["correct"] == 1 and m["no_window"] == 1 and m["per_segment"][1]["predicted"] is None


def test_csv_and_rttm_readers_read_what_make_call_writes(tmp_path):
    (tmp_path / "r.csv").write_text(segments_csv(REF))
    (tmp_path / "r.rttm").write_text(segments_rttm(REF, "call"))
    assert read_reference(tmp_path / "r.csv") == REF
    assert [(s.start, s.end, s.label) for s in read_reference(tmp_path / "r.rttm")] == [(s.start, s.end, s.label) for s in REF]
    (tmp_path / "plain.csv").write_text("start,end,label\n3,5,sad\n\n0,2,ang\n")  # any order, blank lines
    assert [(s.start, s.label) for s in read_reference(tmp_path / "plain.csv")] == [(0, "ang"), (3, "sad")]


@pytest.mark.parametrize("name,text,where,problem", [
    ("a.csv", "start,end,label\n0,1,ang\n1,x,sad\n", ":3", "'x' is not a number"),
    ("b.csv", "start,stop,label\n0,1,ang\n", ":1", "lacks column(s) end"),
    ("c.csv", "start,end,label\n0,1,ang\n2,1.5,sad\n", ":3", "not after start"),
    ("d.csv", "start,end,label\n0,2,ang\n1,3,sad\n", ":3", "overlaps"),
    ("e.csv", "start,end,label\n0,1\n", ":2", "2 fields"),
    ("f.rttm", "SPEAKER call 1 0.0 1.0 <NA> <NA> ang <NA> <NA>\nSPEAKER call 1 2.0\n", ":2", "RTTM has 10"),
    ("g.rttm", "SPEAKER call 1 0.0 -1 <NA> <NA> ang <NA> <NA>\n", ":1", ">= 0"),
    ("h.rttm", "SPEAKER call 1 0.0 nan <NA> <NA> ang <NA> <NA>\n", ":1", "finite"),
])
def test_a_malformed_reference_line_is_an_error_naming_file_and_line(tmp_path, name, text, where, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ReferenceError) as e:
        read_reference(path)
    assert f"{path}{where}:" in str(e.value) and problem in str(e.value)


def test_read_timeline_picks_one_file_and_names_bad_lines(tmp_path):
    lines = [{"path": "/x/a.wav", "timeline": [win(0, 1, "ang")]}, {"path": "/x/b.wav", "timeline": [win(0, 1, "sad")]}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(ReferenceError, match="2 lines match.*a.wav, b.wav.*--file"):
        read_timeline(path)
    assert read_timeline(path, "b.wav")[0][0]["label"] == "sad"
    assert read_timeline(path, "b")[1] == "/x/b.wav"
    path.write_text(json.dumps(lines[0]) + "\n{not json\n")
    with pytest.raises(ReferenceError, match=f"{path}:2: not JSON"):
        read_timeline(path)
    path.write_text(json.dumps({"path": "a.wav", "label": "ang"}) + "\n")
    with pytest.raises(ReferenceError, match="no \"timeline\".*--timeline"):
        read_timeline(path)


def test_evaluate_timeline_command(tmp_path, capsys):
    tl = [win(0, 1, "ang"), win(1, 2, "hap", 0.5), win(2, 3, PAUSE), win(3, 5.5, "sad")]  # u1: a tie, ang more sure
    (tmp_path / "t.jsonl").write_text(json.dumps({"path": "call.wav", "timeline": tl}) + "\n")
    (tmp_path / "call.rttm").write_text(segments_rttm(REF, "call"))
    main(["evaluate-timeline", "--timeline", str(tmp_path / "t.jsonl"), "--reference", str(tmp_path / "call.rttm"),
          "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "EDER 37.5%" in out and "wrong label 25.0%" in out and "false alarm 12.5%" in out and "2/2 = 100.0%" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["eder"]["eder"] == pytest.approx(0.375) and rep["majority"]["correct"] == 2
    with pytest.raises(SystemExit, match="reference file not found"):
        main(["evaluate-timeline", "--timeline", str(tmp_path / "t.jsonl"), "--reference", str(tmp_path / "no.csv")])
