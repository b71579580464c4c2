"""Clipper against torch.nn.utils.clip_grad_norm_ on the same gradients."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gradsweep.spaces.apply import Clipper, build_optimizer
from gradsweep.spaces.apply.clipping import combine_norms, grads_norm
from gradsweep.spaces.trial_config import TrialConfig


def _backward(model: nn.Module) -> None:
    torch.manual_seed(3)
    model(torch.randn(4, 3, 8), torch.randint(0, 20, (4, 5))).backward()


def _config(
    make_two_tower_config, *, video_clip: float | None, global_clip: float | None, norm_type: float = 2.0
) -> TrialConfig:
    base = make_two_tower_config(clip={"max_norm": global_clip, "norm_type": norm_type}).model_dump(
        mode="json"
    )
    base["towers"][0]["clip_max_norm"] = video_clip
    return TrialConfig.model_validate(base)


def _tower_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    return {
        "video_backbone": list(model.video_backbone.parameters()),
        "text_encoder": list(model.text_encoder.parameters()),
        "temperature": [model.temperature],
    }


def _norm(params: list[nn.Parameter], norm_type: float = 2.0) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in params], norm_type)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_per_tower_then_global_matches_clip_grad_norm(
    two_tower, make_two_tower_config, norm_type: float
) -> None:
    cfg = _config(make_two_tower_config, video_clip=0.01, global_clip=0.05, norm_type=norm_type)
    _backward(two_tower)
    ref = copy.deepcopy(two_tower)
    for p, q in zip(two_tower.parameters(), ref.parameters(), strict=True):
        q.grad = p.grad.clone()  # deepcopy does not copy .grad
    ref_towers = _tower_params(ref)
    raw_global = _norm(list(ref.parameters()), norm_type)
    ref_text = _norm(ref_towers["text_encoder"], norm_type)
    ref_video_pre = torch.nn.utils.clip_grad_norm_(
        ref_towers["video_backbone"], 0.01, norm_type, foreach=True
    )
    torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 0.05, norm_type, foreach=True)

    result = Clipper(build_optimizer(two_tower, cfg), cfg).clip()
    # the limits are tight enough that both clips really act
    assert float(result.pre["video_backbone"]) > 0.01 and float(result.global_pre) > 0.05
    # the per-tower pre norm is what clip_grad_norm_ returns for that tower
    assert torch.allclose(result.pre["video_backbone"], ref_video_pre, rtol=1e-6)
    # an unclipped tower's pre norm is its plain gradient norm
    assert torch.allclose(result.pre["text_encoder"], ref_text, rtol=1e-6)
    # global_pre is the norm of the raw gradients, before any clipping
    assert torch.allclose(result.global_pre, raw_global, rtol=1e-6)
    # the gradients end up exactly as sequential clip_grad_norm_ calls leave them
    for (name, p), q in zip(two_tower.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-12), name
    # post norms are the norms of the final gradients, per tower and overall
    for tower, params in _tower_params(two_tower).items():
        assert torch.allclose(result.post[tower], _norm(params, norm_type), rtol=1e-5), tower
    assert torch.allclose(result.global_post, _norm(list(two_tower.parameters()), norm_type), rtol=1e-5)
    # the global clip bound holds (clip_grad_norm_'s 1e-6 epsilon aside)
    assert float(result.global_post) <= 0.05 * (1 + 1e-4)


def test_no_limits_reports_norms_and_leaves_grads(two_tower, make_two_tower_config) -> None:
    cfg = _config(make_two_tower_config, video_clip=None, global_clip=None)
    _backward(two_tower)
    before = [p.grad.clone() for p in two_tower.parameters()]
    result = Clipper(build_optimizer(two_tower, cfg), cfg).clip()
    # without limits the gradients are untouched
    assert all(torch.equal(a, p.grad) for a, p in zip(before, two_tower.parameters(), strict=True))
    # and post equals pre for every tower and overall
    assert all(torch.equal(result.pre[t], result.post[t]) for t in result.pre)
    assert torch.equal(result.global_pre, result.global_post)
    # norms are 0-dim tensors (device-side, not floats)
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in (*result.pre.values(), result.global_pre))


def test_towers_without_grads_report_zero(two_tower, make_two_tower_config) -> None:
    cfg = _config(make_two_tower_config, video_clip=0.5, global_clip=1.0)
    opt = build_optimizer(two_tower, cfg)
    _backward(two_tower)
    for p in two_tower.text_encoder.parameters():
        p.grad = None
    result = Clipper(opt, cfg).clip()
    # a tower with no gradients (frozen or not trained this stage) reports zero norms
    assert float(result.pre["text_encoder"]) == 0.0 and float(result.post["text_encoder"]) == 0.0
    # the other towers still count toward the global norm
    expected = combine_norms(
        [result.pre["video_backbone"], result.pre["temperature"]], 2.0, torch.device("cpu")
    )
    assert torch.allclose(result.global_pre, expected)


def test_grads_norm_helper_edges() -> None:
    # an empty list has norm 0 on the requested device
    assert float(grads_norm([], 2.0, torch.device("cpu"))) == 0.0
    # mixed dtypes are grouped and combined like one concatenated vector
    grads = [torch.tensor([3.0]), torch.tensor([4.0], dtype=torch.float64)]
    assert float(grads_norm(grads, 2.0, torch.device("cpu"))) == pytest.approx(5.0)
    # non-finite gradients give a non-finite norm (never swallowed)
    assert not torch.isfinite(grads_norm([torch.tensor([float("inf"), 1.0])], 2.0, torch.device("cpu")))


def test_clipper_needs_tower_groups(two_tower, make_two_tower_config) -> None:
    # a plain optimizer has no tower keys; the error says how to build one
    with pytest.raises(ValueError, match="build_optimizer"):
        Clipper(torch.optim.SGD(two_tower.parameters(), lr=0.1), make_two_tower_config())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_clip_does_not_sync_on_cuda(two_tower, make_two_tower_config) -> None:
    model = two_tower.cuda()
    cfg = _config(make_two_tower_config, video_clip=0.01, global_clip=0.05)
    clipper = Clipper(build_optimizer(model, cfg), cfg)
    model(torch.randn(4, 3, 8, device="cuda"), torch.randint(0, 20, (4, 5), device="cuda")).backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = clipper.clip()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # the norms live on the GPU and were computed without a host sync
    assert result.global_post.device.type == "cuda" and float(result.global_post) <= 0.05 * (1 + 1e-4)
