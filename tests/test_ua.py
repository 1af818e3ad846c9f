"""One UA everywhere: mean recall over the classes present in the reference labels, checked
against scikit-learn's balanced accuracy (an independent implementation)."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix
from torchmetrics.classification import MulticlassAccuracy

from ser_fcn.study.cv_aggregate import aggregate
from ser_fcn.inference.evaluate import scores
from ser_fcn.training.metrics import confusion_scores
from ser_fcn.training.module import SERModule

# Four classes; class 3 never occurs in the reference but is predicted once.
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 3]

# sklearn warns about exactly the cases under test (a predicted class absent from y_true)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:sklearn")


def test_an_absent_but_predicted_class_is_left_out_of_ua():
    cm = confusion_matrix(Y_TRUE, Y_PRED, labels=range(4))
    wa, ua = confusion_scores(cm.tolist())
    assert ua == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED)) == pytest.approx(2.5 / 3)
    assert wa == pytest.approx(5 / 6)
    # torchmetrics' macro accuracy counts class 3 as recall 0: the definition we do not use
    macro = MulticlassAccuracy(4, average="macro")(torch.tensor(Y_PRED), torch.tensor(Y_TRUE))
    assert float(macro) == pytest.approx(0.625)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_confusion_scores_agree_with_sklearn(pairs):
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    wa, ua = confusion_scores(confusion_matrix(y_true, y_pred, labels=range(4)))
    assert wa == pytest.approx(accuracy_score(y_true, y_pred))
    assert ua == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert scores(np.array(y_true), np.array(y_pred), ["a", "b", "c", "d"])["ua"] == pytest.approx(ua)


def test_the_module_logs_the_same_ua():
    """`val/ua` and `test/ua` of the LightningModule use the shared definition."""
    module = SERModule(torch.nn.Identity(), num_classes=4, n_bins=2)
    logged = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, float(value))
    probs = torch.nn.functional.one_hot(torch.tensor(Y_PRED), 4).float()
    module.eval_posteriors["val"].update(torch.arange(6), probs, torch.tensor(Y_TRUE))
    module._eval_epoch_end("val")
    assert logged["val/ua"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert logged["val/wa"] == pytest.approx(5 / 6)


def test_fold_and_pooled_ua_share_the_definition(tmp_path):
    """The aggregate's per-fold mean and its pooled UA both leave an absent class out."""
    cm = confusion_matrix(Y_TRUE, Y_PRED, labels=range(4)).tolist()
    fold = tmp_path / "fold1"
    fold.mkdir()
    ua = balanced_accuracy_score(Y_TRUE, Y_PRED)
    (fold / "results.json").write_text(json.dumps({
        "fold": 1, "wa": 5 / 6, "ua": ua, "confusion_matrix": cm, "classes": ["neu", "hap", "sad", "ang"],
        "n_utterances": 6, "history": [], "predicted": [0, 1, 2, 3]}))
    agg = aggregate(tmp_path, ["fold1"])
    assert agg["pooled"]["ua"] == pytest.approx(ua) and agg["ua"]["mean"] == pytest.approx(ua)
