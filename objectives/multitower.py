"""Contrastive training across three towers at once, with an einsum "6D" loss or a stable one (seed 003).

Each example is one scikit-learn digit seen three ways, one tower per view (the module names
the presets' patterns match):

======================  ===================================================================
``image_tower``         MLP on the digit, randomly shifted on a 10x10 canvas
``rotated_tower``       MLP on the same digit turned by 90, 180 or 270 degrees
``caption_tower``       bag of word embeddings of a caption naming the digit ("a 7")
``temperature``         log of the logit scale (``stable``) or the raw temperature (``einsum``)
======================  ===================================================================

``extras.loss_variant`` picks the loss:

* ``einsum`` (the seed's version 0): unnormalised embeddings, one ``(B, B, B)`` logit cube
  ``einsum("id,jd,kd->ijk") / temperature`` over all three towers with the raw learnable
  temperature, a hand-written softmax towards the diagonal from each tower's side and a sum over
  anchors. Nothing bounds the logits or the gradient: its norm runs in the hundreds (the seed's
  own "exploding" line is 100) and ``exp`` overflows to a NaN loss once a logit passes ~88
  (fp32) or ~11 (fp16 autocast).
* ``stable``: epsilon-protected L2 normalisation, pairwise symmetric InfoNCE over the three
  tower pairs, logit scale and logits clamped.

Metrics on held-out digits (a retrieved item is relevant when it shows the same digit), for
image->caption (``i2c``), rotated->caption (``r2c``) and image->rotated (``i2r``):
``recall_at_1``, ``recall_at_5``, ``ndcg_at_5``; plus ``mean_recall_at_1`` over the three.

Extras: ``loss_variant`` (``stable``), ``temperature_init`` (0.1), ``eps`` (1e-6, stable only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradsweep.objectives.api import TrialContext, refuse_accumulation
from gradsweep.objectives.contrastive import retrieval_metrics
from gradsweep.objectives.data.captions import Tokenizer, digit_caption
from gradsweep.objectives.data.digits_clips import SIDE, digit_images
from gradsweep.spaces.trial_config import TrialConfig

PAIRS = (("i2c", 0, 2), ("r2c", 1, 2), ("i2r", 0, 1))
METRICS = (
    *(f"{m}_{p}" for p, _, _ in PAIRS for m in ("recall_at_1", "recall_at_5", "ndcg_at_5")),
    "mean_recall_at_1",
)
DEFAULT_METRIC = "mean_recall_at_1"
DIRECTION = "maximize"
PRESET = "multitower.yaml"
LOSS_VARIANTS = ("einsum", "stable")
CANVAS = 10
CAPTION_WORDS = 4


@dataclass(frozen=True)
class Scale:
    n_train: int
    n_eval: int
    dim: int
    embed: int


SCALES = {
    "tiny": Scale(n_train=512, n_eval=200, dim=64, embed=32),
    "small": Scale(n_train=1200, n_eval=500, dim=128, embed=64),
    "full": Scale(n_train=1200, n_eval=500, dim=256, embed=256),
}


@dataclass(frozen=True)
class Views:
    """Three views per example: ``image`` and ``rotated`` ``(N, 1, 10, 10)``, ``tokens`` ``(N, 4)``."""

    image: torch.Tensor
    rotated: torch.Tensor
    tokens: torch.Tensor
    digit: torch.Tensor

    def __len__(self) -> int:
        return int(self.digit.shape[0])


def make_views(n: int, pool: np.ndarray, rng: np.random.Generator, tok: Tokenizer) -> Views:
    """``n`` examples drawn from the digit images at ``pool`` (deterministic under ``rng``)."""
    images, labels = digit_images()
    picks = rng.choice(pool, size=n, replace=n > len(pool))
    image = np.zeros((n, CANVAS, CANVAS), dtype=np.float32)
    rotated = np.zeros_like(image)
    for row, i in enumerate(picks):
        x, y = rng.integers(0, CANVAS - SIDE + 1, size=2)
        image[row, y : y + SIDE, x : x + SIDE] = images[i]
        x, y = rng.integers(0, CANVAS - SIDE + 1, size=2)
        rotated[row, y : y + SIDE, x : x + SIDE] = np.rot90(images[i], k=int(rng.integers(1, 4)))
    texts = [digit_caption(int(labels[i]), rng) for i in picks]
    return Views(
        image=torch.from_numpy(image).unsqueeze(1),
        rotated=torch.from_numpy(rotated).unsqueeze(1),
        tokens=tok.batch(texts, length=CAPTION_WORDS),
        digit=torch.from_numpy(labels[picks].copy()),
    )


def _image_mlp(dim: int, embed: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(1), nn.Linear(CANVAS * CANVAS, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, embed)
    )


class CaptionTower(nn.Module):
    """Mean of word embeddings (padding ignored), then an MLP: ``(B, L) -> (B, E)``."""

    def __init__(self, vocab: int, dim: int, embed: int) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, embed))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = (ids != 0).unsqueeze(-1).float()
        pooled = (self.words(ids) * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.mlp(pooled)


class MultiTower(nn.Module):
    def __init__(self, scale: Scale, vocab: int, temperature_init: float, *, log_scale: bool = True) -> None:
        super().__init__()
        self.image_tower = _image_mlp(scale.dim, scale.embed)
        self.rotated_tower = _image_mlp(scale.dim, scale.embed)
        self.caption_tower = CaptionTower(vocab, scale.dim, scale.embed)
        # ``stable`` learns log(1/T) (clamped in the loss); ``einsum`` learns T itself, like the seed
        init = math.log(1.0 / temperature_init) if log_scale else temperature_init
        self.temperature = nn.Parameter(torch.tensor(init))

    def forward(self, views: Views, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            self.image_tower(views.image.to(device)),
            self.rotated_tower(views.rotated.to(device)),
            self.caption_tower(views.tokens.to(device)),
        )


def einsum_loss(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """The seed's "6D" loss (its version 0): one unnormalised ``(B, B, B)`` logit cube, naive softmax.

    ``cube[i, j, k] = sum_d a_id * b_jd * c_kd / temperature`` with the raw learnable temperature
    (no log-parametrisation, no clamp). For each tower, anchor ``i``'s row is the ``B*B`` cube
    entries along the other two towers and the target is ``(i, i)``; the softmax is written out
    as ``exp(x) / sum(exp(x))`` and the per-anchor losses are summed, like the original. So the
    gradient grows with the batch and with ``1/temperature`` and the cube of the embedding
    norms, and ``exp`` overflows to ``inf`` (NaN loss) once a logit passes ~88 in fp32 (~11 in fp16).
    """
    n = a.shape[0]
    cube = torch.einsum("id,jd,kd->ijk", a.float(), b.float(), c.float()) / temperature  # (B, B, B)
    diag = torch.arange(n, device=a.device)
    loss = cube.new_zeros(())
    for rows in (cube, cube.permute(1, 0, 2), cube.permute(2, 0, 1)):  # anchor in a, b, c
        flat = rows.reshape(n, n * n)
        p = flat.exp() / flat.exp().sum(dim=1, keepdim=True)
        loss = loss - p[diag, diag * (n + 1)].log().sum()
    return loss


def stable_loss(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, log_scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Pairwise symmetric InfoNCE over (a, b), (a, c), (b, c) with eps-protected normalisation.

    The logit scale is clamped to [1, 100] and logits to [-100, 100].
    """
    za, zb, zc = (x.float() / (x.float().norm(dim=-1, keepdim=True) + eps) for x in (a, b, c))
    scale = log_scale.clamp(0.0, math.log(100.0)).exp()
    losses = []
    for x, y in ((za, zb), (za, zc), (zb, zc)):
        logits = (scale * x @ y.T).clamp(-100.0, 100.0)
        target = torch.arange(x.shape[0], device=x.device)
        losses.append(0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)))
    return torch.stack(losses).mean()


@torch.no_grad()
def evaluate(model: MultiTower, views: Views, ctx: TrialContext) -> dict[str, float]:
    """All :data:`METRICS` on ``views`` (cosine similarity; non-finite embeddings rank last)."""
    model.eval()
    with ctx.autocast():
        z = [F.normalize(x.float(), dim=-1) for x in model(views, ctx.device)]
    model.train()
    labels = views.digit.to(ctx.device)
    out: dict[str, float] = {}
    for name, q, i in PAIRS:
        out.update({f"{k}_{name}": v for k, v in retrieval_metrics(z[q] @ z[i].T, labels, labels).items()})
    out["mean_recall_at_1"] = sum(out[f"recall_at_1_{p}"] for p, _, _ in PAIRS) / len(PAIRS)
    return out


def build_model(config: TrialConfig) -> MultiTower:
    """The untrained towers for ``config`` (``gradsweep validate`` checks tower patterns on it)."""
    variant = str(config.extra("loss_variant", "stable"))
    return MultiTower(
        SCALES[config.scale],
        len(Tokenizer.build()),
        float(config.extra("temperature_init", 0.1)),
        log_scale=variant == "stable",
    )


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Train the three towers and return ``config.metric.name`` on held-out digits.

    Raises:
        ValueError: for an unknown metric or ``loss_variant``, or ``accumulation_steps`` > 1.
        gradsweep.objectives.api.TrialPruned: when the reporter prunes the trial.
    """
    if config.metric.name not in METRICS:
        raise ValueError(f"metric.name must be one of {', '.join(METRICS)} but got {config.metric.name!r}")
    variant = str(config.extra("loss_variant", "stable"))
    if variant not in LOSS_VARIANTS:
        raise ValueError(f"extras.loss_variant must be one of {', '.join(LOSS_VARIANTS)} but got {variant!r}")
    refuse_accumulation(config, "multitower")
    metric, scale, eps = config.metric.name, SCALES[config.scale], float(config.extra("eps", 1e-6))

    # 1. data: train and held-out views from disjoint digit images
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(digit_images()[1]))
    tok = Tokenizer.build()
    held_out = make_views(scale.n_eval, order[: len(order) // 4], rng, tok)
    train = make_views(scale.n_train, order[len(order) // 4 :], rng, tok)
    steps_per_epoch = max(1, len(train) // config.batch_size)

    # 2. model and the per-step kit
    model = build_model(config)
    trainer = ctx.trainer(model, steps_per_epoch=steps_per_epoch)

    # 3. resume from the newest checkpoint, if any (model, trainer state, epochs done, last scores)
    resumed = ctx.resume(trainer)
    scores: dict[str, float] = dict(resumed.extra.get("scores", {}))

    # 4. train; evaluate, report and checkpoint after each epoch
    on_device = Views(*(t.to(ctx.device) for t in (train.image, train.rotated, train.tokens, train.digit)))
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        # this epoch's order depends on (seed, epoch) only, so a resume repeats it (epochs counted from 0 here)
        order_seed = config.seed * 1000 + run.epoch - 1
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(order_seed))
        perm = perm.to(ctx.device)
        for i in range(run.steps):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            batch = Views(
                on_device.image[idx], on_device.rotated[idx], on_device.tokens[idx], on_device.digit[idx]
            )
            with ctx.autocast():
                a, b, c = model(batch, ctx.device)
                if variant == "einsum":
                    loss = einsum_loss(a, b, c, model.temperature)
                else:
                    loss = stable_loss(a, b, c, model.temperature, eps)
            if trainer.monitor is not None:
                for name, z in (("image", a), ("rotated", b), ("caption", c)):
                    trainer.monitor.observe_output(name, z.detach())
            trainer.step(loss)
        scores = evaluate(model, held_out, ctx)
        trainer.scheduler.step_metric(scores[metric])
        ctx.save_progress(trainer, epochs_done=run.epoch, extra={"scores": scores})
        ctx.report(scores[metric], trainer.global_step)
    if not scores:
        scores = evaluate(model, held_out, ctx)
    return scores[metric]
