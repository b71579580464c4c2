"""GradScaler and autocast from the config's amp section."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gradsweep.spaces.apply import autocast_context, build_scaler, scaler_enabled, scaler_kwargs

SCALER = {"init_scale": 1024.0, "growth_factor": 1.5, "backoff_factor": 0.25, "growth_interval": 100}
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_scaler_kwargs_come_from_config(make_two_tower_config) -> None:
    cfg = make_two_tower_config(amp={"dtype": "fp16", "scaler": SCALER})
    # the helper passes the four scaler settings through unchanged
    assert scaler_kwargs(cfg) == SCALER


def test_settings_land_in_grad_scaler(make_two_tower_config) -> None:
    cfg = make_two_tower_config(amp={"dtype": "fp16", "scaler": SCALER})
    # the kwargs are accepted by GradScaler and read back by its getters (CPU scaler enabled explicitly)
    scaler = torch.amp.GradScaler("cpu", enabled=True, **scaler_kwargs(cfg))
    assert (
        scaler.get_scale(),
        scaler.get_growth_factor(),
        scaler.get_backoff_factor(),
        scaler.get_growth_interval(),
    ) == (
        1024.0,
        1.5,
        0.25,
        100,
    )


@pytest.mark.parametrize("dtype", ["none", "bf16", "fp16"])
def test_scaler_disabled_on_cpu(make_two_tower_config, dtype: str) -> None:
    cfg = make_two_tower_config(amp={"dtype": dtype, "scaler": SCALER})
    # on CPU no dtype enables loss scaling
    assert build_scaler(cfg, CPU).is_enabled() is False


def test_scaler_enabled_rule(make_two_tower_config) -> None:
    # only fp16 on CUDA scales the loss; bf16 and none never do
    assert scaler_enabled(make_two_tower_config(amp={"dtype": "fp16"}), CUDA)
    assert not scaler_enabled(make_two_tower_config(amp={"dtype": "bf16"}), CUDA)
    assert not scaler_enabled(make_two_tower_config(amp={"dtype": "none"}), CUDA)
    assert not scaler_enabled(make_two_tower_config(amp={"dtype": "fp16"}), CPU)


def test_disabled_scaler_is_transparent(two_tower, make_two_tower_config) -> None:
    scaler = build_scaler(make_two_tower_config(), CPU)
    loss = two_tower(torch.randn(2, 3, 8), torch.randint(0, 20, (2, 5)))
    # a disabled scaler returns the loss unscaled, so callers use it unconditionally
    assert scaler.scale(loss) is loss


@pytest.mark.parametrize("dtype", ["none", "bf16", "fp16"])
def test_autocast_is_noop_on_cpu(make_two_tower_config, dtype: str) -> None:
    ctx = autocast_context(make_two_tower_config(amp={"dtype": dtype}), CPU)
    # CPU training runs in full precision whatever the config says
    assert isinstance(ctx, contextlib.nullcontext)


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
@pytest.mark.parametrize(("dtype", "torch_dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_on_cuda_device_object(make_two_tower_config, dtype: str, torch_dtype: torch.dtype) -> None:
    ctx = autocast_context(make_two_tower_config(amp={"dtype": dtype}), CUDA)
    # for a CUDA device the context is torch.autocast with the configured dtype (constructed, not entered)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch_dtype and ctx.device == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_scales_and_autocasts(make_two_tower_config) -> None:
    cfg = make_two_tower_config(amp={"dtype": "fp16", "scaler": SCALER})
    scaler = build_scaler(cfg, CUDA)
    # on CUDA, fp16 turns the scaler on with the configured initial scale
    assert scaler.is_enabled() and scaler.get_scale() == 1024.0 and scaler.get_growth_interval() == 100
    lin = torch.nn.Linear(4, 4).cuda()
    with autocast_context(cfg, CUDA):
        out = lin(torch.randn(2, 4, device="cuda"))
    # the forward pass ran in half precision
    assert out.dtype == torch.float16
