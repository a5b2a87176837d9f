"""The fast inference settings (channels-last, folded batch norm) compute what the plain eager network computes, for
every model family, and the engine's validation copy leaves the training model alone."""
import pytest
import torch
from torch import nn

from poselab.models.core import create_model, inference_model
from poselab.predict import Predictor

FAMILIES = {                                            # name, constructor arguments, input (h, w)
    "simplebaseline": ("pose_resnet_18", {"deconv_filters": [32, 32, 32]}, (64, 48)),
    "hrnet": ("pose_hrnet_w18_small", {}, (64, 64)),
    "hourglass": ("stacked_hourglass", {"num_stacks": 2}, (64, 64)),
    "hourglass_depth": ("hourglass_depth", {"num_stacks": 1, "input_size": 64}, (64, 64)),
    "higher_hrnet": ("higher_hrnet_w32", {}, (64, 64)),
}


def _randomised(net: nn.Module) -> nn.Module:
    "Non-trivial batch-norm statistics and affine parameters, so that folding them changes the weights."
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return net.eval()


def _tensors(out):
    if isinstance(out, torch.Tensor): return [out]
    if isinstance(out, dict): return [t for v in out.values() for t in _tensors(v)]
    return [t for v in out for t in _tensors(v)]


def _rel_err(a, b) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_predictor_fast_settings_match_eager(family):
    name, kw, (h, w) = FAMILIES[family]
    torch.manual_seed(0)
    net = _randomised(create_model(name, **kw))
    size = h if name.startswith("higher") else (w, h)
    fast = Predictor(net, input_size=size, flip_test=False)                     # the defaults: folded, channels-last
    plain = Predictor(net, input_size=size, flip_test=False, channels_last=False, fuse_bn=False)
    assert fast.net is not net and fast.net.fused_bn_count > 0
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())      # the caller's net keeps its BN
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in fast.net.parameters() if p.ndim == 4)
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = _tensors(plain.net(x))
        out = _tensors(fast.net(x.contiguous(memory_format=torch.channels_last)))
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        assert _rel_err(a, b) <= 1e-4, (family, _rel_err(a, b))


def test_inference_model_without_example_only_converts():
    net = _randomised(create_model("pose_resnet_18", deconv_filters=[32, 32, 32]))
    out = inference_model(net, None)
    assert not hasattr(out, "fused_bn_count") and out is not net
    assert out.final_layer.weight.is_contiguous(memory_format=torch.channels_last)


def test_engine_validates_a_folded_copy():
    from poselab.train import RunConfig, _eval_model
    torch.manual_seed(0)
    net = _randomised(create_model("pose_resnet_18", deconv_filters=[32, 32, 32])).train()
    cfg = RunConfig(task="topdown", model="pose_resnet_18", input_size=(64, 64), device="cpu", logger="none")
    ev = _eval_model(net, cfg, "cpu")
    assert ev is not net and ev.fused_bn_count > 0 and not ev.training
    assert net.training and any(isinstance(m, nn.BatchNorm2d) for m in net.modules())    # training model untouched
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = net.eval()(x); out = ev(x)
    assert _rel_err(ref, out) <= 1e-4
    assert _eval_model(net, RunConfig(task="topdown", input_size=(64, 64), fuse_bn=False, logger="none"), "cpu") is net
