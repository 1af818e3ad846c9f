from types import SimpleNamespace

import pytest
from torch import nn

from ser_fcn.study import figure4


def test_figure4_without_attention_is_one_line_not_a_traceback(monkeypatch, tmp_path):
    module = SimpleNamespace(net=nn.Linear(2, 2))  # a net with no attention head
    monkeypatch.setattr(figure4, "load_checkpoint", lambda ckpt: (module, None, {}))
    with pytest.raises(SystemExit) as e:
        figure4.main(["--ckpt", str(tmp_path / "baseline.ckpt"), "--out", str(tmp_path / "f.png")])
    assert "has no attention" in str(e.value) and "baseline.ckpt" in str(e.value)
