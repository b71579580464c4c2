"""Mixed precision from a config: the GradScaler and the autocast context.

Only fp16 needs loss scaling, and only CUDA gets autocast here; on CPU both are inert so the
same training code runs everywhere.

Example:
    >>> import torch
    >>> from gradsweep.spaces.trial_config import TowerConfig, TrialConfig
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)])
    >>> build_scaler(cfg, torch.device("cpu")).is_enabled()
    False
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from gradsweep.spaces.trial_config import AmpDtype, TrialConfig

_AUTOCAST_DTYPES = {AmpDtype.BF16: torch.bfloat16, AmpDtype.FP16: torch.float16}


def scaler_kwargs(config: TrialConfig) -> dict[str, Any]:
    """``torch.amp.GradScaler`` keyword arguments from ``config.amp.scaler``.

    Returns:
        ``init_scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``.
    """
    s = config.amp.scaler
    return {
        "init_scale": float(s.init_scale),
        "growth_factor": float(s.growth_factor),
        "backoff_factor": float(s.backoff_factor),
        "growth_interval": int(s.growth_interval),
    }


def scaler_enabled(config: TrialConfig, device: torch.device) -> bool:
    """Loss scaling is on only for ``amp.dtype == "fp16"`` on a CUDA device."""
    return config.amp.dtype == AmpDtype.FP16 and torch.device(device).type == "cuda"


def build_scaler(config: TrialConfig, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler with the config's settings, enabled only for fp16 on CUDA.

    A disabled scaler's ``scale(loss)`` returns the loss, ``unscale_`` does nothing and
    ``step(optimizer)`` just steps, so callers use it unconditionally.

    Args:
        config: the resolved trial config (``amp.dtype`` and ``amp.scaler``).
        device: the training device.

    Returns:
        The scaler.
    """
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=scaler_enabled(config, device), **scaler_kwargs(config))


def autocast_dtype(config: TrialConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``config`` on ``device``: bf16/fp16 on CUDA, None otherwise."""
    if torch.device(device).type != "cuda":
        return None
    return _AUTOCAST_DTYPES.get(config.amp.dtype)


def autocast_context(
    config: TrialConfig, device: torch.device
) -> torch.autocast | contextlib.nullcontext[None]:
    """``torch.autocast("cuda", dtype)`` for bf16/fp16 on CUDA, else a no-op context.

    Args:
        config: the resolved trial config.
        device: the training device.

    Returns:
        A context manager to wrap the forward pass and loss in.
    """
    dtype = autocast_dtype(config, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)
