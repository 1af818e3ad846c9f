"""models/recurrent.py: the bidirectional LSTM along time between the encoder and the head.
(Batched == alone for the whole FCN with it is in test_models.py's `model` fixture.)"""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ser_fcn.models.recurrent import TemporalLSTM, reverse_within_lengths


def _features(lengths, channels=8, freq=3, seed=0):
    """(B, C, F, T) features, zero beyond each row's length (what the encoder hands on)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), channels, freq, int(lengths.max()), generator=g)
    return x * (torch.arange(x.shape[-1]) < lengths[:, None])[:, None, None, :], lengths


def test_reversal_within_lengths_reverses_the_valid_steps_and_keeps_the_padding():
    index = reverse_within_lengths(torch.tensor([5, 3, 1]), 5)
    assert index.tolist() == [[4, 3, 2, 1, 0], [2, 1, 0, 3, 4], [0, 1, 2, 3, 4]]
    assert torch.equal(index.gather(1, index), torch.arange(5).expand(3, 5))  # twice: the identity


def test_it_is_torchs_bidirectional_lstm_over_packed_rows_plus_the_input():
    """The reference: nn.LSTM(bidirectional=True) on packed sequences, with the same weights."""
    torch.manual_seed(0)
    layer = TemporalLSTM(8).eval()
    bi = torch.nn.LSTM(8, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, p in bi.named_parameters():
            direction = layer.backward_lstm if name.endswith("_reverse") else layer.forward_lstm
            p.copy_(getattr(direction, name.removesuffix("_reverse")))
    x, lengths = _features([9, 6, 2, 1])
    b, c, f, t = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b * f, t, c)
    packed = pack_padded_sequence(rows, lengths.repeat_interleave(f), batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(bi(packed)[0], batch_first=True, total_length=t)
    expected = x + out.reshape(b, f, t, c).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, lengths), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_each_row_gets_its_lone_answer_and_zeros_past_its_length():
    torch.manual_seed(0)
    layer = TemporalLSTM(8).eval()
    x, lengths = _features([9, 6, 2, 1], seed=1)
    out = layer(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[i, :, :, :n], layer(x[i : i + 1, :, :, :n])[0], atol=1e-6, rtol=0)
        assert torch.all(out[i, :, :, n:] == 0)


@torch.no_grad()
def test_without_the_reversal_within_lengths_the_backward_lstm_reads_the_padding():
    """The reversal has teeth: the backward LSTM run on the padded rows reversed as a whole
    (what a bidirectional nn.LSTM does without packing) changes every shorter row."""
    torch.manual_seed(0)
    layer = TemporalLSTM(8).eval()
    x, lengths = _features([9, 6, 2], seed=2)
    b, c, f, t = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b * f, t, c)
    naive = layer.backward_lstm(rows.flip(1))[0].flip(1).reshape(b, f, t, -1)
    right = layer(x, lengths) - x  # the two directions' output, channels [C/2:] the backward one
    for i, n in enumerate(lengths.tolist()[1:], start=1):
        exact = right[i, c // 2 :, :, :n].permute(1, 2, 0)
        assert (naive[i, :, :n] - exact).abs().max() > 1e-3, n


def test_an_odd_channel_count_is_refused():
    with pytest.raises(ValueError, match="even channel count, got 7"):
        TemporalLSTM(7)
