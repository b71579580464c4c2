"""End-to-end fp16 step on CUDA: autocast, scaled backward, unscale, clip, step, schedule."""

from __future__ import annotations

import pytest
import torch

from gradsweep.spaces.apply import Clipper, StagedScheduler, autocast_context, build_optimizer, build_scaler

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_amp_training_loop_on_cuda(two_tower, make_two_tower_config, dtype: str) -> None:
    device = torch.device("cuda")
    cfg = make_two_tower_config(
        amp={"dtype": dtype, "scaler": {"init_scale": 256.0}},
        clip={"max_norm": 1.0},
        stages=[{"name": "s", "steps": 20}],
        schedule={"kind": "cosine", "warmup_steps": 2},
    )
    model = two_tower.to(device)
    opt = build_optimizer(model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=20, model=model)
    scaler, clipper = build_scaler(cfg, device), Clipper(opt, cfg)
    torch.manual_seed(0)
    video, tokens = torch.randn(8, 3, 8, device=device), torch.randint(0, 20, (8, 5), device=device)
    losses = []
    for _ in range(20):
        with autocast_context(cfg, device):
            loss = model(video, tokens)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        result = clipper.clip()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(loss.detach())
    losses_host = torch.stack(losses).float().cpu()
    # the loss stays finite and goes down on a fixed batch
    assert torch.isfinite(losses_host).all() and losses_host[-1] < losses_host[0]
    # the scaler is on exactly for fp16
    assert scaler.is_enabled() == (dtype == "fp16")
    # clip norms are GPU tensors within the global bound
    assert result.global_post.device.type == "cuda" and float(result.global_post) <= 1.0 + 1e-4
