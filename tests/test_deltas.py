"""models/deltas.py: the spectrogram with its delta and delta-delta as three input channels.
(Batched == alone for the whole FCN with deltas is in test_models.py's `model` fixture.)"""

import pytest
import torch
import torchvision
from torchaudio.functional import compute_deltas  # the reference the package's own must match

from ser_fcn.models import FCNAttention, SegmentClassifier
from ser_fcn.models.deltas import DELTA_WINDOW, Deltas


def _padded(lengths, n_bins=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), 1, n_bins, int(lengths.max()), generator=g).cumsum(-1)  # smooth-ish
    return x * (torch.arange(x.shape[-1]) < lengths[:, None])[:, None, None, :], lengths


def test_a_lone_row_gets_torchaudios_deltas_scaled():
    x, _ = _padded([50])
    out = Deltas()(x)
    scale = Deltas().scale
    assert scale == pytest.approx((2 * (1 + 4)) ** 0.5)  # window 5: n = 1, 2
    d1 = compute_deltas(x, win_length=DELTA_WINDOW)
    torch.testing.assert_close(out[:, :1], x)
    torch.testing.assert_close(out[:, 1:2], d1 * scale)
    torch.testing.assert_close(out[:, 2:3], compute_deltas(d1, win_length=DELTA_WINDOW) * scale**2)


def test_each_row_of_a_batch_gets_its_lone_deltas_and_zeros_past_its_length():
    lengths = [40, 23, 7, 1]
    x, n = _padded(lengths)
    out = Deltas()(x, n)
    assert out.shape == (4, 3, 16, 40)
    for i, length in enumerate(lengths):
        torch.testing.assert_close(out[i, :, :, :length], Deltas()(x[i : i + 1, :, :, :length])[0])
        assert torch.all(out[i, :, :, length:] == 0)


def test_without_holding_the_last_frame_a_short_rows_deltas_would_change():
    """The hold has teeth: torchaudio's deltas on the zero-padded batch differ from the lone
    row's at its last frames (the padding's zeros enter the window)."""
    x, n = _padded([40, 23])
    naive = compute_deltas(x, win_length=DELTA_WINDOW)[1, :, :, :23]
    lone = compute_deltas(x[1:, :, :, :23], win_length=DELTA_WINDOW)[0]
    assert (naive[..., -2:] - lone[..., -2:]).abs().max() > 0.1
    torch.testing.assert_close(Deltas()(x, n)[1, 1:2, :, :23], lone * Deltas().scale)


def test_deltas_refuse_more_than_one_input_channel():
    with pytest.raises(ValueError, match="1-channel"):
        Deltas()(torch.zeros(1, 3, 8, 10))


def test_conv1_takes_three_channels_and_imagenet_rgb_filters_load_unsummed(tmp_path):
    torch.manual_seed(3)
    state = torchvision.models.alexnet().state_dict()
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    fcn = FCNAttention(num_classes=4, weights=str(path), deltas=True)
    torch.testing.assert_close(fcn.encoder.features[0].weight, state["features.0.weight"])
    seg = SegmentClassifier(num_classes=4, weights=str(path), deltas=True)
    torch.testing.assert_close(seg.features[0].weight, state["features.0.weight"])
    assert FCNAttention(num_classes=4).encoder.features[0].in_channels == 1  # off by default


def test_with_conv1_reading_only_the_delta_channels_the_answer_follows_change_over_time():
    """Only the delta filters left: a constant added to the valid frames (the deltas do not
    change: the hold keeps the padding out of them) leaves the answer as it is, halving the
    input (deltas halved) changes it."""
    torch.manual_seed(0)
    net = FCNAttention(num_classes=4, deltas=True, lam=0.0).eval()
    x, n = _padded([120, 90], n_bins=64)
    shifted = x + 3.0 * (torch.arange(120) < n[:, None])[:, None, None, :]
    with torch.no_grad():
        net.encoder.features[0].weight[:, 0] = 0.0
        base = net(x, n)[0]
        torch.testing.assert_close(net(shifted, n)[0], base, atol=1e-5, rtol=0)
        assert (net(x * 0.5, n)[0] - base).abs().max() > 1e-3


def test_a_traced_deltas_model_takes_other_batch_sizes_and_lengths():
    """The export traces the net: the deltas must not bake the traced batch size in (torchaudio's
    grouped conv did)."""
    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = FCNAttention(num_classes=4, deltas=True).eval()

        def forward(self, a, b):
            return self.net(a, b)[0]

    torch.manual_seed(0)
    net = Logits().eval()
    x, n = _padded([200, 100], n_bins=64)
    with torch.no_grad():
        traced = torch.jit.trace(net, (x, n))
        x3, n3 = _padded([300, 150, 70], n_bins=64, seed=1)
        torch.testing.assert_close(traced(x3, n3), net(x3, n3), atol=1e-5, rtol=0)
