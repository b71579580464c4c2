"""Pure numeric helpers of the health monitor: norm aggregation, decay-to-grad ratio, spikes, stalls.

Everything here is a function of its arguments (no module state), so tests call it directly with
zeros, NaN, inf and empty inputs. Tensor helpers stay on the tensors' device (no host sync);
float helpers work on host-side values the monitor has already read back.

Example:
    >>> import torch
    >>> float(aggregate_norms(torch.tensor([3.0, 4.0])))
    5.0
    >>> round(robust_z_score(1.5, [1.0, 1.1, 0.9, 1.0, 1.05]), 2)  # MAD 0.05 -> sigma 0.074
    6.74
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch

#: Relative floor on the spread of a spike detector's reference window: with a flat loss history
#: (MAD = 0) a change of 1% of the median counts as one unit of spread instead of an infinite z.
SPIKE_SPREAD_FLOOR = 1e-2
#: Samples a spike detector needs before it scores anything.
SPIKE_MIN_SAMPLES = 5
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def _check_norm_type(norm_type: float) -> float:
    norm_type = float(norm_type)
    if not (norm_type > 0.0):
        raise ValueError(f"norm_type must be > 0 (2.0 for L2, inf for max) but got {norm_type}")
    return norm_type


def aggregate_norms(norms: torch.Tensor, norm_type: float = 2.0) -> torch.Tensor:
    """Combine per-part norms into the norm of the concatenation, on the tensors' device.

    ``||concat(x_1..x_n)||_p = (sum_i ||x_i||_p ** p) ** (1/p)``; for ``p = inf`` it is the max.
    NaN and inf propagate (a non-finite part makes the whole non-finite); an empty input is 0.

    Args:
        norms: 1-D tensor of per-parameter (or per-group) norms.
        norm_type: ``p`` of the norm, > 0; ``math.inf`` for the max norm.

    Returns:
        A 0-dim tensor on ``norms.device``.

    Raises:
        ValueError: if ``norm_type`` is not > 0.
    """
    p = _check_norm_type(norm_type)
    norms = norms.float()
    if norms.numel() == 0:
        return torch.zeros((), device=norms.device)
    if math.isinf(p):
        return norms.max()  # propagates NaN
    if p == 2.0:
        return torch.linalg.vector_norm(norms, 2.0)
    return norms.pow(p).sum().pow(1.0 / p)


def segment_norms(
    norms: torch.Tensor, segments: torch.Tensor, n_segments: int, norm_type: float = 2.0
) -> torch.Tensor:
    """Per-segment :func:`aggregate_norms`: ``out[s]`` combines the ``norms[i]`` with ``segments[i] == s``.

    Used to turn one fused ``torch._foreach_norm`` over every gradient into per-tower norms with a
    handful of kernels. Segments without members get 0.

    Args:
        norms: 1-D tensor of per-parameter norms.
        segments: 1-D long tensor of the same length, values in ``[0, n_segments)``.
        n_segments: number of segments (towers).
        norm_type: ``p`` of the norm, > 0, or ``math.inf``.

    Returns:
        A 1-D float tensor of length ``n_segments`` on ``norms.device``.

    Raises:
        ValueError: if ``norm_type`` is not > 0 or the lengths differ.
    """
    p = _check_norm_type(norm_type)
    if norms.shape != segments.shape:
        raise ValueError(
            f"norms and segments must have the same shape but got {norms.shape} and {segments.shape}"
        )
    out = torch.zeros(n_segments, device=norms.device, dtype=torch.float32)
    if norms.numel() == 0:
        return out
    norms = norms.float()
    if math.isinf(p):
        # scatter_reduce(amax) propagates NaN, like max()
        return out.scatter_reduce(0, segments, norms, reduce="amax", include_self=True)
    if p == 2.0:
        return out.index_add_(0, segments, norms * norms).sqrt_()
    return out.index_add_(0, segments, norms.pow(p)).pow_(1.0 / p)


def decay_to_grad_ratio(decay_step: float, update_step: float) -> float:
    """Ratio of AdamW's decoupled decay step to its gradient-driven step.

    ``decay_step`` is ``lr * wd * ||w||``; ``update_step`` is the size of the gradient-driven update,
    which the monitor estimates as ``lr * ||m_hat / (sqrt(v_hat) + eps)||`` from AdamW's state (the
    step AdamW really takes), or ``lr * ||g||`` before the first step or for plain SGD (seed 000's
    own diagnostic). A ratio over ~1 means decay shrinks the weights faster than the gradient moves
    them; seed 000 flags > 2.

    Args:
        decay_step: non-negative decay step size.
        update_step: non-negative gradient-driven step size.

    Returns:
        ``decay_step / update_step``; ``0.0`` when there is no decay (including ``0 / 0``); ``inf``
        when there is decay but no gradient-driven update; NaN if either input is NaN.
    """
    if math.isnan(decay_step) or math.isnan(update_step):
        return math.nan
    if decay_step <= 0.0:
        return 0.0
    if update_step <= 0.0:
        return math.inf
    return decay_step / update_step


def robust_z_score(value: float, reference: Sequence[float]) -> float:
    """How many robust standard deviations ``value`` lies above the median of ``reference``.

    The spread is ``1.4826 * MAD`` floored at ``SPIKE_SPREAD_FLOOR * |median|`` (and at 1e-12), so a
    perfectly flat history does not turn every tiny wiggle into an infinite score. Non-finite
    reference values are ignored.

    Args:
        value: the new observation.
        reference: earlier observations.

    Returns:
        The one-sided score (positive when ``value`` is above the median); ``0.0`` with fewer than
        ``SPIKE_MIN_SAMPLES`` finite references; ``inf`` for ``value = +inf``; NaN for NaN.
    """
    finite = sorted(x for x in reference if math.isfinite(x))
    if len(finite) < SPIKE_MIN_SAMPLES:
        return 0.0
    if math.isnan(value):
        return math.nan
    median = statistics.median(finite)
    mad = statistics.median(abs(x - median) for x in finite)
    spread = max(_MAD_TO_SIGMA * mad, SPIKE_SPREAD_FLOOR * abs(median), 1e-12)
    if math.isinf(value):
        return math.inf if value > 0 else -math.inf
    return (value - median) / spread


def spike_scores(
    values: Sequence[float], reference: Sequence[float], window: int
) -> tuple[list[float], list[float]]:
    """Score each of ``values`` against the ``window`` finite values before it.

    Args:
        values: new observations, in order.
        reference: the observations before ``values`` (only the last ``window`` finite ones matter).
        window: reference length, >= 1.

    Returns:
        ``(scores, new_reference)``: one :func:`robust_z_score` per value, and the last ``window``
        finite observations of ``reference + values`` to carry into the next call.

    Raises:
        ValueError: if ``window`` < 1.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 but got {window}")
    ref = [x for x in reference if math.isfinite(x)][-window:]
    scores = []
    for v in values:
        scores.append(robust_z_score(v, ref))
        if math.isfinite(v):
            ref.append(v)
            if len(ref) > window:
                del ref[0]
    return scores, ref


def is_stalled(check_losses: Sequence[float], window: int, min_delta: float) -> bool:
    """Whether the last ``window`` losses failed to improve on the best one before them.

    Improvement is relative: the best of the last ``window`` must be below
    ``best_before - min_delta * |best_before|``. Non-finite losses are ignored.

    Args:
        check_losses: one (smoothed) loss per check, oldest first.
        window: checks without improvement that make a stall, >= 1.
        min_delta: required relative improvement, >= 0.

    Returns:
        ``True`` only when there are more than ``window`` finite losses and none of the last
        ``window`` improves enough; ``False`` otherwise.

    Raises:
        ValueError: if ``window`` < 1 or ``min_delta`` < 0.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 but got {window}")
    if min_delta < 0:
        raise ValueError(f"min_delta must be >= 0 but got {min_delta}")
    finite = [x for x in check_losses if math.isfinite(x)]
    if len(finite) <= window:
        return False
    best_before = min(finite[:-window])
    best_recent = min(finite[-window:])
    return not best_recent < best_before - min_delta * abs(best_before)


def longest_true_run(flags: Sequence[bool], carry: int = 0) -> tuple[int, int]:
    """Longest run of ``True`` in ``flags`` and the run still open at the end.

    Args:
        flags: per-step booleans (e.g. GradScaler skipped steps), oldest first.
        carry: length of the run open at the end of the previous call.

    Returns:
        ``(longest, open_run)``; runs continue across calls through ``carry``.
    """
    longest = run = carry
    for f in flags:
        run = run + 1 if f else 0
        longest = max(longest, run)
    return longest, run
