"""Tests of ser_fcn.models: exact length masking, length arithmetic, ImageNet loading, attention."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from ser_fcn.models import AlexNetFCN, AttentionHead, FCNAttention, SegmentClassifier, load_imagenet
from ser_fcn.models.alexnet_fcn import MaskedBatchNorm, MaskedGroupNorm, NormAct
from ser_fcn.models.weights import IMAGENET_WEIGHTS, WeightsError

N_BINS = 200  # frequency bins of the paper's spectrogram


def _batch(lengths, n_bins=N_BINS, seed=0):
    """Random spectrogram batch, zero beyond each row's length (the collate's contract)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths, dtype=torch.long)
    x = torch.randn(len(lengths), 1, n_bins, int(lengths.max()), generator=g)
    valid = torch.arange(x.shape[-1]) < lengths[:, None]
    return x * valid[:, None, None, :], lengths


def _entropy(p):
    p = p.flatten(1)
    return -(p * torch.log(p.clamp_min(1e-30))).sum(1)


@pytest.fixture(scope="module", params=["paper", "pooled_norm", "group_norm", "batch_norm", "deltas", "recurrent"])
def model(request):
    """The model in eval mode; with `pooled_norm` its BatchNorm has non-trivial running
    statistics, with `group_norm` (the encoder's MaskedGroupNorm) non-trivial scales and
    shifts, with `batch_norm` (MaskedBatchNorm) both, so that a batch mixing into another
    utterance's answer would show; `deltas` feeds the encoder the input with its deltas
    (models/deltas.py), which read along time too; `recurrent` puts the LSTMs of
    models/recurrent.py, which read whole rows along time, before the head."""
    torch.manual_seed(0)
    encoder_norm = {"group_norm": "group", "batch_norm": "batch"}.get(request.param)
    net = FCNAttention(num_classes=4, pooled_norm=request.param == "pooled_norm", norm=encoder_norm,
                       deltas=request.param == "deltas", recurrent=request.param == "recurrent")
    if request.param == "pooled_norm":
        norm = net.head.classifier[0]
        norm.running_mean.uniform_(0.0, 2.0)
        norm.running_var.uniform_(0.5, 3.0)
    for m in net.modules():
        if isinstance(m, (MaskedGroupNorm, MaskedBatchNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        if isinstance(m, MaskedBatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A torchvision alexnet() state dict (fixed seed) saved as a local .pth."""
    torch.manual_seed(123)
    state = torchvision.models.alexnet().state_dict()
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(state, path)
    return path, state


# ---------------------------------------------------------------- length arithmetic


def test_min_frames_is_the_true_minimum():
    enc = AlexNetFCN().eval()
    assert enc.min_frames == 63  # 200 x T input, AlexNet strides: 4 * 2 * 2 * 2, kernel 11
    with torch.no_grad():
        assert enc.features(torch.randn(1, 1, N_BINS, enc.min_frames)).shape[-1] == 1
        with pytest.raises(RuntimeError):  # one frame less: a pool has nothing left
            enc.features(torch.randn(1, 1, N_BINS, enc.min_frames - 1))


def test_output_lengths_match_the_encoder():
    enc = AlexNetFCN().eval()
    # 34 consecutive lengths cover every remainder of the total stride (4 * 2 * 2 * 2 = 32)
    lengths = list(range(63, 97)) + [256, 257, 333, 1001]
    got = enc.output_lengths(torch.tensor(lengths))
    with torch.no_grad():
        for n, n_out in zip(lengths, got.tolist()):
            # the frequency axis does not matter for the time arithmetic; keep it small
            assert enc.features(torch.zeros(1, 1, 63, n)).shape[-1] == n_out, n
    # shorter inputs are padded up to min_frames: one output step, and forward agrees
    assert enc.output_lengths(torch.tensor([1, 30, 62])).tolist() == [1, 1, 1]
    with torch.no_grad():
        feats, out_len = enc(torch.randn(2, 1, N_BINS, 30), torch.tensor([30, 12]))
    assert feats.shape[-1] == 1 and out_len.tolist() == [1, 1]
    assert feats.shape[1:3] == (256, 5)  # F' = 5 for 200 bins


# ---------------------------------------------------------------- exact masking

LENGTHS = [517, 300, 129, 100, 64, 63, 40]  # includes exactly min_frames and one shorter


@torch.no_grad()
def test_batched_equals_alone(model):
    x, lengths = _batch(LENGTHS)
    logits, attn = model(x, lengths)
    out_len = model.output_lengths(lengths)
    assert attn.shape == (len(LENGTHS), 5, int(out_len.max()))
    for i, n in enumerate(LENGTHS):
        lone_logits, lone_attn = model(x[i : i + 1, :, :, :n], lengths[i : i + 1])
        t = int(out_len[i])
        assert lone_attn.shape[-1] == t
        torch.testing.assert_close(logits[i], lone_logits[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(attn[i, :, :t], lone_attn[0], atol=1e-5, rtol=0)
        assert torch.all(attn[i, :, t:] == 0)  # exactly zero on padded steps
        torch.testing.assert_close(attn[i].sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


@torch.no_grad()
def test_batch_of_short_utterances_only(model):
    """T_max < min_frames: the batch itself is padded; each row still equals its lone answer."""
    x, lengths = _batch([50, 20, 1], seed=1)
    logits, attn = model(x, lengths)
    assert attn.shape == (3, 5, 1)
    for i, n in enumerate([50, 20, 1]):
        lone_logits, lone_attn = model(x[i : i + 1, :, :, :n], lengths[i : i + 1])
        torch.testing.assert_close(logits[i], lone_logits[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(attn[i], lone_attn[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_without_per_layer_masking_batching_changes_the_answer(model):
    """The equality above has teeth: running the same layers unmasked (only the attention
    masked) changes every padded row's features by a lot and its logits by >> atol."""
    x, lengths = _batch(LENGTHS)
    out_len = model.output_lengths(lengths)
    naive = model.encoder.features(x if model.deltas is None else model.deltas(x, lengths))
    naive_logits = model.pool(naive, out_len)[0]
    for i, n in enumerate(LENGTHS[1:], start=1):  # every row shorter than the batch
        lone_x = x[i : i + 1, :, :, :n]
        lone, lone_len = model.encode(lone_x, lengths[i : i + 1])
        lone_logits = model.pool(lone, lone_len)[0]
        t = int(out_len[i])
        assert (naive[i, :, :, :t] - lone[0]).abs().max() > 0.05 * lone.abs().max(), n
        assert (naive_logits[i] - lone_logits[0]).abs().max() > 10 * 1e-5, n


def test_garbage_in_padding_is_ignored(model):
    """Whatever sits beyond a row's length (the contract says zero) cannot change its answer."""
    x, lengths = _batch([300, 90])
    noisy = x.clone()
    noisy[1, :, :, 90:] = 100.0
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, lengths)[0], model(x, lengths)[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- attention head


def test_lam_zero_is_mean_pooling_over_valid_positions():
    torch.manual_seed(0)
    head = AttentionHead(in_channels=8, num_classes=3, lam=0.0).eval()
    feats = torch.randn(2, 8, 5, 7)
    lengths = torch.tensor([7, 3])
    feats[1, :, :, 3:] = 0  # the encoder leaves padded steps at zero
    logits, alpha = head(feats, lengths)
    torch.testing.assert_close(alpha[0], torch.full((5, 7), 1 / 35))
    torch.testing.assert_close(alpha[1, :, :3], torch.full((5, 3), 1 / 15))
    assert torch.all(alpha[1, :, 3:] == 0)
    mean = torch.stack([feats[0].mean((1, 2)), feats[1, :, :, :3].mean((1, 2))])
    torch.testing.assert_close(logits, head.classifier(mean))


def test_lam_controls_sharpness():
    torch.manual_seed(0)
    head = AttentionHead(in_channels=8, num_classes=3).eval()
    assert head.lam == 0.3  # the paper's value is the default
    feats, lengths = torch.randn(4, 8, 5, 9), torch.tensor([9, 9, 6, 2])
    entropies = []
    for lam in (0.0, 0.3, 1.0, 5.0):
        head.lam = lam
        _, alpha = head(feats, lengths)
        torch.testing.assert_close(alpha.sum((1, 2)), torch.ones(4))
        entropies.append(_entropy(alpha))
    n_valid = 5 * lengths.float()
    torch.testing.assert_close(entropies[0], torch.log(n_valid))  # uniform: maximal entropy
    for sharper, softer in zip(entropies[1:], entropies[:-1]):
        assert torch.all(sharper < softer)


def test_head_ignores_padded_positions_even_if_nonzero():
    torch.manual_seed(0)
    head = AttentionHead(in_channels=8, num_classes=3).eval()
    feats = torch.randn(1, 8, 5, 6)
    padded = torch.cat([feats, torch.full((1, 8, 5, 4), 50.0)], dim=-1)
    logits, alpha = head(padded, torch.tensor([6]))
    lone_logits, lone_alpha = head(feats, torch.tensor([6]))
    torch.testing.assert_close(logits, lone_logits)
    torch.testing.assert_close(alpha[..., :6], lone_alpha)
    assert torch.all(alpha[..., 6:] == 0)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("recurrent", [False, True])
def test_gradients_reach_every_parameter(recurrent):
    torch.manual_seed(0)
    model = FCNAttention(num_classes=4, recurrent=recurrent).train()
    x, lengths = _batch([180, 90, 40])
    logits, _ = model(x, lengths)
    F.cross_entropy(logits, torch.tensor([0, 1, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.slow
def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = FCNAttention(num_classes=4, dropout=0.0).train()
    x, lengths = _batch([90, 80, 70, 63], n_bins=64, seed=3)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(60):  # about 30 steps are needed
        opt.zero_grad()
        loss = F.cross_entropy(model(x, lengths)[0], y)
        loss.backward()
        opt.step()
        if loss < 0.02:
            break
    model.eval()
    with torch.no_grad():
        logits, _ = model(x, lengths)
    assert F.cross_entropy(logits, y) < 0.1
    assert torch.equal(logits.argmax(1), y)


def test_pooled_norm_uses_running_statistics_never_a_batchs_own():
    from ser_fcn.models.attention import PooledNorm

    torch.manual_seed(0)
    norm = PooledNorm(8).train()
    x = torch.randn(16, 8) * 0.1 + 5.0  # a large common part, small differences: a random encoder's c
    y = norm(x)  # the first batch sets the statistics: it comes out standardised
    torch.testing.assert_close(y.mean(0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(8), atol=1e-3, rtol=0)
    x2 = torch.randn(16, 8) * 0.3 + 7.0
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    y2 = norm(x2)  # later batches move them by `momentum`
    torch.testing.assert_close(norm.running_mean, mean.lerp(x2.mean(0), 0.1))
    torch.testing.assert_close(norm.running_var, var.lerp(x2.var(0), 0.1))
    # each row is normalised with the (updated) running statistics, as in evaluation: its answer
    # does not depend on its batch-mates, and a batch of one is no special case
    torch.testing.assert_close(y2, norm.eval()(x2))
    before = norm.running_mean.clone()
    torch.testing.assert_close(norm.train()(x2[3:4]), y2[3:4])
    assert torch.equal(norm.running_mean, before)  # a batch of one leaves them alone
    head = AttentionHead(8, 3, pooled_norm=True).train()
    logits, _ = head(torch.randn(1, 8, 2, 4))
    assert logits.shape == (1, 3)


@pytest.mark.parametrize("norm", ["pooled", "batch"])
def test_running_statistics_stay_float32_under_bf16_autocast(norm):
    """Under `trainer.precision: bf16-mixed` (autocast) a training batch reaches PooledNorm and
    MaskedBatchNorm in bf16: their float32 running statistics take its statistics, computed in
    float32, instead of failing on the dtype, and the normalised output follows them."""
    from ser_fcn.models.attention import PooledNorm

    torch.manual_seed(0)
    if norm == "pooled":
        module, x = PooledNorm(8).train(), torch.randn(16, 8) * 2 + 3
        dims = (0,)
    else:
        module, x = MaskedBatchNorm(8).train(), torch.randn(3, 8, 5, 20) * 2 + 3
        dims = (0, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        module(x.bfloat16())  # the first batch sets the statistics
        y = module(x.bfloat16())  # the second moves them (towards the same values)
    assert module.running_mean.dtype == module.running_var.dtype == torch.float32
    assert int(module.num_batches_tracked) == 2
    torch.testing.assert_close(module.running_mean, x.bfloat16().float().mean(dims), atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(y.float().mean(dims), torch.zeros(8), atol=5e-2, rtol=0)


def test_masked_group_norm_takes_each_utterances_valid_steps_only():
    """Each row is normalised as nn.GroupNorm normalises it alone: its own statistics over its
    valid steps (whatever its tail holds, in training as in evaluation), and a zero tail."""
    torch.manual_seed(0)
    norm = MaskedGroupNorm(4, 8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 8, 5, 40) * 3 + 1
    lengths = torch.tensor([40, 17, 1])
    x[1, ..., 17:] = 50.0  # a dirty tail, as a conv's bias leaves it
    y = norm(x, lengths)
    plain = torch.nn.GroupNorm(4, 8)
    plain.load_state_dict(norm.state_dict())
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(y[i : i + 1, ..., :n], plain(x[i : i + 1, ..., :n]), atol=1e-5, rtol=1e-5)
        assert torch.all(y[i, ..., n:] == 0)
    torch.testing.assert_close(norm(x[:1]), plain(x[:1]))  # no lengths: all steps valid


def test_masked_batch_norm_normalises_with_running_statistics_of_the_valid_steps():
    """Training batches only update the running statistics, from their valid steps alone (a
    dirty tail changes nothing): the first sets them to the valid values' mean and unbiased
    variance, later ones move them by `momentum`. Every row is normalised with them, in
    training as in evaluation, so its answer does not depend on its batch-mates; the tail is
    zero; evaluation leaves the statistics alone; a norm in the encoder keeps the ImageNet convs."""
    torch.manual_seed(0)
    norm = MaskedBatchNorm(8).train()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    lengths = torch.tensor([40, 17, 3])
    x = torch.randn(3, 8, 5, 40) * 3 + 1
    x[1, ..., 17:] = 50.0  # a dirty tail, as a conv's bias leaves it
    x[2, ..., 3:] = -50.0
    valid = torch.cat([x[i, ..., :n].reshape(8, -1) for i, n in enumerate(lengths.tolist())], 1)
    y = norm(x, lengths)
    torch.testing.assert_close(norm.running_mean, valid.mean(1))
    torch.testing.assert_close(norm.running_var, valid.var(1))
    x2 = torch.randn(2, 8, 5, 30) * 0.5 - 2
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    y2 = norm(x2)  # no lengths: every step valid
    torch.testing.assert_close(norm.running_mean, mean.lerp(x2.transpose(0, 1).reshape(8, -1).mean(1), 0.1))
    torch.testing.assert_close(norm.running_var, var.lerp(x2.transpose(0, 1).reshape(8, -1).var(1), 0.1))
    plain = torch.nn.BatchNorm2d(8).eval()
    plain.load_state_dict(norm.state_dict())
    torch.testing.assert_close(y2, plain(x2))  # the updated statistics normalise this batch
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.eval()
    batched = norm(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = norm(x[i : i + 1, ..., :n], lengths[i : i + 1])
        torch.testing.assert_close(batched[i, ..., :n], alone[0])
        assert torch.all(batched[i, ..., n:] == 0)
    assert all(torch.equal(v, norm.state_dict()[k]) for k, v in before.items())  # eval: no update
    first = MaskedBatchNorm(8).train()  # y above: the first batch, by its own (= running) statistics
    first.load_state_dict({**norm.state_dict(), "running_mean": valid.mean(1), "running_var": valid.var(1)})
    torch.testing.assert_close(y, first.eval()(x, lengths))
    model = FCNAttention(num_classes=4, norm="batch")
    norms = [m for m in model.encoder.features if isinstance(m, NormAct)]
    assert len(norms) == 5 and all(isinstance(m.norm, MaskedBatchNorm) for m in norms)


def _assert_imagenet_convs_and_fresh_norms(ours, tv_state):
    """Every ImageNet feature key but conv1's (summed over RGB) loaded as is, and the 5 convs'
    GroupNorms (10 keys) at their fresh init; returns the norms' keys."""
    for key, value in tv_state.items():
        if key.startswith("features.") and key != "features.0.weight":
            assert torch.equal(ours[key], value), key
    norms = [k for k in ours if ".norm." in k]
    assert len(norms) == 10 and all(torch.all(ours[k] == (1.0 if k.endswith("weight") else 0.0)) for k in norms)
    return norms


def test_group_norm_encoder_sits_between_conv_and_activation_and_loads_imagenet_convs(alexnet_file):
    """norm="group": a NormAct after each of the 5 convs, in the activations' places, so the
    ImageNet conv keys still load; the norms keep their fresh init; an unknown norm is named."""
    path, tv_state = alexnet_file
    model = FCNAttention(num_classes=4, weights=str(path), norm="group")
    features = model.encoder.features
    convs = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(features[i + 1], NormAct) for i in convs) and len(convs) == 5
    _assert_imagenet_convs_and_fresh_norms(model.encoder.state_dict(), tv_state)
    with pytest.raises(ValueError, match=r"'layer'.*batch.*group"):
        FCNAttention(num_classes=4, norm="layer")


def test_unknown_encoder_is_named():
    with pytest.raises(ValueError, match=r"'resnet'.*alexnet"):
        FCNAttention(num_classes=4, encoder="resnet")
    with pytest.raises(ValueError, match=r"'resnet'.*alexnet.*vgg16"):
        SegmentClassifier(num_classes=4, arch="resnet")


# ---------------------------------------------------------------- ImageNet weights


def test_encoder_keys_are_torchvisions(alexnet_file):
    _, tv_state = alexnet_file
    ours = AlexNetFCN().state_dict()
    tv_features = {k: v.shape for k, v in tv_state.items() if k.startswith("features.")}
    assert set(ours) == set(tv_features)
    for key, shape in tv_features.items():
        expected = (shape[0], 1, *shape[2:]) if key == "features.0.weight" else shape
        assert ours[key].shape == expected, key


def test_rgb_sum_equals_repeated_input():
    torch.manual_seed(0)
    rgb = torchvision.models.alexnet().features[0]
    grey = torch.nn.Conv2d(1, 64, kernel_size=11, stride=4, padding=2)
    with torch.no_grad():
        grey.weight.copy_(rgb.weight.sum(1, keepdim=True))
        grey.bias.copy_(rgb.bias)
        x = torch.randn(2, 1, 80, 90)
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-5, rtol=1e-5)


def test_fcn_loads_imagenet_features_from_a_path(alexnet_file):
    path, tv_state = alexnet_file
    model = FCNAttention(num_classes=4, weights=str(path))
    ours = model.encoder.state_dict()
    torch.testing.assert_close(ours["features.0.weight"], tv_state["features.0.weight"].sum(1, keepdim=True))
    for key in ours:
        if key != "features.0.weight":
            assert torch.equal(ours[key], tv_state[key]), key


def test_alexnet_baseline_loads_all_but_its_last_layer(alexnet_file):
    path, tv_state = alexnet_file
    torch.manual_seed(7)
    fresh = SegmentClassifier(num_classes=4)
    torch.manual_seed(7)
    model = SegmentClassifier(num_classes=4, weights=path)
    ours = model.state_dict()
    torch.testing.assert_close(ours["features.0.weight"], tv_state["features.0.weight"].sum(1, keepdim=True))
    for key in ours:
        if key.startswith("classifier.6."):
            assert torch.equal(ours[key], fresh.state_dict()[key]), key  # untouched
        elif key != "features.0.weight":
            assert torch.equal(ours[key], tv_state[key]), key
    assert model.classifier[6].out_features == 4
    logits, attn = model.eval()(torch.randn(2, 1, N_BINS, 300), torch.tensor([300, 300]))
    assert logits.shape == (2, 4) and attn is None


def test_vgg16_baseline_loads_from_a_path(tmp_path):
    torch.manual_seed(5)
    path = tmp_path / "vgg16.pth"
    torch.save(torchvision.models.vgg16().state_dict(), path)
    model = SegmentClassifier(num_classes=3, arch="vgg16", weights=path)
    tv_state = torch.load(path, weights_only=True, mmap=True)
    ours = model.state_dict()
    assert set(ours) == set(tv_state)
    torch.testing.assert_close(ours["features.0.weight"], tv_state["features.0.weight"].sum(1, keepdim=True))
    for key in ours:
        if key.startswith("classifier.6."):  # ours, not the file's
            assert ours[key].shape[0] == 3 and tv_state[key].shape[0] == 1000
        elif key != "features.0.weight":
            assert torch.equal(ours[key], tv_state[key]), key
    with torch.no_grad():
        logits, _ = model.eval()(torch.randn(1, 1, 32, 32), None)
    assert logits.shape == (1, 3)


@pytest.mark.parametrize("lrn", [True, False])
def test_fcn_encoder_and_alexnet_baseline_agree_on_lrn(alexnet_file, lrn):
    """Same LRN setting, same ImageNet weights: the FCN encoder and the baseline's `features`
    compute the same thing on a full-length input; lrn=False is torchvision's AlexNet."""
    path, _ = alexnet_file
    fcn = FCNAttention(num_classes=4, weights=str(path), lrn=lrn).encoder.eval()
    base = SegmentClassifier(num_classes=4, weights=str(path), lrn=lrn).eval()
    has_lrn = [any(isinstance(m, torch.nn.LocalResponseNorm) for m in net.modules()) for net in (fcn, base)]
    assert has_lrn == [lrn, lrn]
    x = _batch([300, 300], seed=3)[0]
    with torch.no_grad():
        torch.testing.assert_close(fcn(x)[0], base.features(x), rtol=1e-5, atol=1e-5)
        plain = torchvision.models.alexnet()
        plain.load_state_dict(torch.load(path))
        rgb = x.expand(-1, 3, -1, -1)  # conv1 summed over RGB == the spectrogram on 3 channels
        same = torch.allclose(plain.features(rgb), base.features(x), rtol=1e-4, atol=1e-4)
    assert same == (not lrn)
    with pytest.raises(ValueError, match="only the alexnet arch"):
        SegmentClassifier(num_classes=4, arch="vgg16", lrn=True)


def test_group_norm_baseline_computes_what_the_group_norm_encoder_computes(alexnet_file):
    """norm="group" on the segmented AlexNet: the same NormAct places as the FCN encoder, the
    ImageNet convs loaded and the norms left fresh, so with the same norm scales the two compute
    the same thing on a full-length input (a recipe with `norm` treats both rows alike); VGG16
    gets a norm after each of its 13 convs; an unknown norm is named."""
    path, tv_state = alexnet_file
    fcn = FCNAttention(num_classes=4, weights=str(path), norm="group").encoder.eval()
    base = SegmentClassifier(num_classes=4, weights=str(path), norm="group").eval()
    ours = base.state_dict()
    norms = _assert_imagenet_convs_and_fresh_norms(ours, tv_state)
    torch.manual_seed(4)
    with torch.no_grad():
        for key in norms:  # non-trivial scales and shifts, the same in both
            fcn.state_dict()[key].uniform_(0.5, 2.0)
        base.load_state_dict({**ours, **{k: fcn.state_dict()[k] for k in norms}})
        x = _batch([300, 300], seed=5)[0]
        torch.testing.assert_close(fcn(x)[0], base.features(x), rtol=1e-5, atol=1e-5)
        plain = SegmentClassifier(num_classes=4, weights=str(path)).eval()
        assert not torch.allclose(plain.features(x), base.features(x), rtol=1e-3, atol=1e-3)
    vgg = SegmentClassifier(num_classes=3, arch="vgg16", norm="group")
    assert sum(isinstance(m, NormAct) for m in vgg.features) == 13
    with pytest.raises(ValueError, match=r"'layer'.*batch.*group"):
        SegmentClassifier(num_classes=4, norm="layer")


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        FCNAttention(num_classes=4, weights=str(path))


def test_garbage_weights_file(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="garbage.pth"):
        FCNAttention(num_classes=4, weights=str(garbage))
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ValueError, match="tensor.pth.*state dict"):
        FCNAttention(num_classes=4, weights=str(not_a_dict))


def test_wrong_shapes_name_file_key_and_shapes(tmp_path, alexnet_file):
    _, tv_state = alexnet_file
    state = dict(tv_state)
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    shapes = r"\(192, 64, 3, 3\).*\(192, 64, 5, 5\)"  # the file's, then the model's
    with pytest.raises(ValueError, match=r"wrong\.pth.*features\.3\.weight.*" + shapes):
        FCNAttention(num_classes=4, weights=str(path))


def test_wrong_architecture_file(tmp_path, alexnet_file):
    _, tv_state = alexnet_file
    state = {k: v for k, v in tv_state.items() if k != "features.10.bias"}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"partial\.pth.*features\.10\.bias"):
        FCNAttention(num_classes=4, weights=str(path))


def test_download_failure_says_to_pass_a_path(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(IMAGENET_WEIGHTS["alexnet"]), "get_state_dict", offline)
    with pytest.raises(WeightsError, match=r"alexnet-owt.*no network.*/path/to/alexnet\.pth.*weights null"):
        FCNAttention(num_classes=4, weights="imagenet")


def test_load_imagenet_is_strict_outside_skip(alexnet_file):
    """Without the explicit skip, the classifier keys the FCN lacks are an error, not ignored."""
    path, _ = alexnet_file
    with pytest.raises(ValueError, match="unexpected keys.*classifier"):
        load_imagenet(AlexNetFCN(), "alexnet", path)


def test_random_init_alexnets_use_he_fan_out_and_the_fcn_head_a_light_dropout():
    """The random-init AlexNet (FCN encoder and segmented baseline alike) has He fan_out conv
    weights (std sqrt(2 / (k*k*C_out))) and zero biases, not PyTorch's default (std
    sqrt(1 / (3 * fan_in))); the head's dropout is attention.DROPOUT."""
    import math

    import torch

    from ser_fcn.models import AlexNetFCN, FCNAttention
    from ser_fcn.models.attention import DROPOUT
    from ser_fcn.models.baselines import SegmentClassifier

    torch.manual_seed(0)
    for features in (AlexNetFCN().features, SegmentClassifier(num_classes=4, arch="alexnet").features):
        convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 5
        for conv in convs[1:]:  # conv1 has 1 input channel: too few weights for a tight std
            k, c_out, c_in = conv.kernel_size[0], conv.out_channels, conv.in_channels
            he, default = math.sqrt(2 / (k * k * c_out)), math.sqrt(1 / (3 * k * k * c_in))
            assert conv.weight.std().item() == pytest.approx(he, rel=0.03)
            assert abs(he - default) / he > 0.1  # the two inits are told apart
            assert torch.count_nonzero(conv.bias) == 0
    head = FCNAttention(num_classes=4).head
    assert head.classifier[0].p == DROPOUT == 0.1


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml")))
def test_every_experiment_file_resolves_to_a_model_that_builds(experiment, capsys):
    """The resolved `model.net` of each experiment (after base.yaml: init_args of the default
    class can be carried into another class) builds; ImageNet weights are left out (offline)."""
    import importlib

    import yaml

    from ser_fcn.cli import run_cli

    repo = Path(__file__).resolve().parents[1]
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", str(repo / "experiments" / f"{experiment}.yaml"), "--print_config"])
    net = yaml.safe_load(capsys.readouterr().out)["model"]["net"]
    module, name = net["class_path"].rsplit(".", 1)
    args = {**net["init_args"], "weights": None}
    args.pop("num_classes", None)
    getattr(importlib.import_module(module), name)(num_classes=4, **args)
