"""Dual-tower video/text retrieval with symmetric InfoNCE and a learnable temperature (seed 000).

Data: clips of scikit-learn digits moving or rotating (:mod:`gradsweep.objectives.data.digits_clips`)
with template captions. Towers (the module names the presets' patterns match):

================================  =========================================================
``video_backbone``                per-frame CNN, ``(B, T, 1, S, S) -> (B, T, D)``
``video_attention_pool``          learnable queries attending over frames, ``-> (B, Q, D)``
``video_aggregator``              MLP over the pooled queries, ``-> (B, E)``
``text_encoder``                  token + position embedding, TransformerEncoder, projection
``temperature``                   log of the logit scale, initialised to ``1/temperature_init``
================================  =========================================================

Metrics on the held-out clips, both directions (``v2t``: video queries, caption items;
``t2v``: the reverse), with every item of the same (digit, motion) class relevant:
``recall_at_1``, ``recall_at_5`` (a relevant item in the top k) and ``ndcg_at_5``.
The objective evaluates, reports (metric + health) and checkpoints after every epoch, and
resumes from its newest checkpoint.

With several DDP workers (``--workers-per-trial N``) each worker trains on its shard of every
global batch of ``N * batch_size`` clips and the InfoNCE negatives span the whole global batch
(the embeddings are gathered with their gradient), so N workers compute the update of one
process with ``batch_size`` N times larger.

Extras: ``temperature_init`` (default 0.07).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsweep.objectives.api import TrialContext, refuse_accumulation
from gradsweep.objectives.data.captions import Tokenizer
from gradsweep.objectives.data.digits_clips import Clips, ClipSpec, make_clips
from gradsweep.objectives.distributed import gather, local_targets
from gradsweep.spaces.trial_config import TrialConfig

METRICS = tuple(f"{m}_{d}" for d in ("v2t", "t2v") for m in ("recall_at_1", "recall_at_5", "ndcg_at_5"))
DEFAULT_METRIC = "recall_at_5_v2t"
DIRECTION = "maximize"
#: Runs as a trial of several DDP workers (``--workers-per-trial``).
DISTRIBUTED = True
PRESET = "contrastive.yaml"


@dataclass(frozen=True)
class Scale:
    clips: ClipSpec
    dim: int  # width of both towers
    embed: int  # shared embedding size
    queries: int  # attention-pool queries
    text_layers: int


SCALES = {
    "tiny": Scale(
        ClipSpec(canvas=14, frames=4, n_train=384, n_eval=120), dim=32, embed=32, queries=4, text_layers=1
    ),
    "small": Scale(
        ClipSpec(canvas=16, frames=5, n_train=2048, n_eval=300), dim=48, embed=48, queries=4, text_layers=2
    ),
    "full": Scale(
        ClipSpec(canvas=32, frames=8, n_train=20000, n_eval=1000),
        dim=256,
        embed=256,
        queries=8,
        text_layers=4,
    ),
}


class FrameEncoder(nn.Module):
    """Per-frame CNN: ``(B, T, 1, S, S) -> (B, T, D)``."""

    def __init__(self, canvas: int, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.GELU(),
        )
        side = math.ceil(math.ceil(canvas / 2) / 2)
        self.proj = nn.Sequential(nn.Linear(32 * side * side, dim), nn.LayerNorm(dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        x = self.conv(video.flatten(0, 1))  # (B*T, 32, s, s)
        return self.proj(x.flatten(1)).view(b, t, -1)  # (B, T, D)


class AttentionPool(nn.Module):
    """Learnable queries attend over frames (with frame-position embeddings): ``-> (B, Q, D)``."""

    def __init__(self, frames: int, dim: int, queries: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(frames, dim))
        self.queries = nn.Parameter(torch.randn(queries, dim))
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        keys = frames + self.position  # (B, T, D)
        q = self.queries.expand(frames.shape[0], -1, -1)  # (B, Q, D)
        pooled, _ = self.attn(q, keys, keys, need_weights=False)
        return pooled


class TextEncoder(nn.Module):
    """Token + position embedding, TransformerEncoder, masked mean pool, projection: ``-> (B, E)``."""

    def __init__(self, vocab: int, length: int, dim: int, embed: int, layers: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim, padding_idx=0)
        self.position = nn.Parameter(torch.randn(length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, nhead=2, dim_feedforward=2 * dim, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.proj = nn.Linear(dim, embed)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0  # (B, L)
        x = self.encoder(self.tokens(ids) + self.position[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, D)
        return self.proj(pooled)


class DualTower(nn.Module):
    """Video and text towers plus the learnable log logit scale ``temperature``."""

    def __init__(self, scale: Scale, vocab: int, length: int, temperature_init: float) -> None:
        super().__init__()
        spec = scale.clips
        self.video_backbone = FrameEncoder(spec.canvas, scale.dim)
        self.video_attention_pool = AttentionPool(spec.frames, scale.dim, scale.queries)
        self.video_aggregator = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(scale.queries * scale.dim, 2 * scale.dim),
            nn.GELU(),
            nn.Linear(2 * scale.dim, scale.embed),
        )
        self.text_encoder = TextEncoder(vocab, length, scale.dim, scale.embed, scale.text_layers)
        self.temperature = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return self.video_aggregator(self.video_attention_pool(self.video_backbone(video)))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(ids)

    def logit_scale(self) -> torch.Tensor:
        return self.temperature.clamp(max=math.log(100.0)).exp()

    def forward(
        self, video: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Video and text embeddings and the logit scale: one call, so DDP sees every parameter used."""
        return self.encode_video(video), self.encode_text(ids), self.logit_scale()


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of ``a`` and ``b`` (both ``(B, E)``, unnormalised).

    In a trial of several workers the rows of every worker are gathered: this worker's rows are
    the queries, everyone's the candidates, and the mean over the workers (DDP's gradient
    average) is the loss of one process over the global batch.
    """
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    all_a, all_b = gather(a), gather(b)  # (N*B, E); a and b themselves in a single process
    target = local_targets(a.shape[0], a.device)  # where this worker's rows sit among all
    a_to_b = logit_scale * a @ all_b.T  # (B, N*B)
    b_to_a = logit_scale * b @ all_a.T
    return 0.5 * (F.cross_entropy(a_to_b, target) + F.cross_entropy(b_to_a, target))


def retrieval_metrics(
    sim: torch.Tensor, query_labels: torch.Tensor, item_labels: torch.Tensor
) -> dict[str, float]:
    """Recall@1, Recall@5 and NDCG@5 of ranking items by ``sim`` for each query.

    An item is relevant when its label equals the query's. Recall@k is the fraction of queries
    with a relevant item in the top k; NDCG@5 uses binary gains and the ideal ranking of
    ``min(5, relevant items)`` ones. A non-finite similarity (a diverged model) never
    counts as a hit, so a NaN model scores 0 rather than whatever order ``topk`` leaves.

    Args:
        sim: ``(Q, N)`` similarities.
        query_labels: ``(Q,)``.
        item_labels: ``(N,)``.

    Returns:
        ``{"recall_at_1", "recall_at_5", "ndcg_at_5"}`` as floats in [0, 1].
    """
    k = min(5, sim.shape[1])
    sim = torch.nan_to_num(sim.float(), nan=-math.inf, posinf=-math.inf)
    top_sim, top = sim.topk(k, dim=1)  # (Q, k)
    rel = ((item_labels[top] == query_labels[:, None]) & torch.isfinite(top_sim)).float()  # (Q, k)
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32, device=sim.device))
    dcg = (rel * discounts).sum(1)
    n_rel = (item_labels[None, :] == query_labels[:, None]).sum(1).clamp(max=k)
    ideal = torch.cumsum(discounts, 0)[(n_rel - 1).clamp(min=0)] * (n_rel > 0)
    ndcg = torch.where(ideal > 0, dcg / ideal.clamp_min(1e-12), torch.zeros_like(dcg))
    return {
        "recall_at_1": float(rel[:, 0].mean()),
        "recall_at_5": float((rel.sum(1) > 0).float().mean()),
        "ndcg_at_5": float(ndcg.mean()),
    }


@torch.no_grad()
def evaluate(model: DualTower, clips: Clips, ctx: TrialContext) -> dict[str, float]:
    """All :data:`METRICS` on ``clips``."""
    model.eval()
    with ctx.autocast():
        v = F.normalize(model.encode_video(clips.video.to(ctx.device)).float(), dim=-1)
        t = F.normalize(model.encode_text(clips.tokens.to(ctx.device)).float(), dim=-1)
    model.train()
    labels = clips.label.to(ctx.device)
    out: dict[str, float] = {}
    for direction, sim in (("v2t", v @ t.T), ("t2v", t @ v.T)):
        out.update(
            {f"{name}_{direction}": value for name, value in retrieval_metrics(sim, labels, labels).items()}
        )
    return out


def build_model(config: TrialConfig) -> DualTower:
    """The untrained dual tower for ``config`` (``gradsweep validate`` checks tower patterns on it)."""
    tok = Tokenizer.build()
    return DualTower(
        SCALES[config.scale], len(tok), tok.max_words, float(config.extra("temperature_init", 0.07))
    )


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Train the dual tower and return ``config.metric.name`` on the held-out clips.

    Raises:
        ValueError: if the metric is not one of :data:`METRICS`, or ``accumulation_steps`` > 1.
        gradsweep.objectives.api.TrialPruned: when the reporter prunes the trial.
    """
    metric = config.metric.name if config.metric.name in METRICS else None
    if metric is None:
        raise ValueError(f"metric.name must be one of {', '.join(METRICS)} but got {config.metric.name!r}")
    refuse_accumulation(config, "contrastive")
    scale = SCALES[config.scale]

    # 1. data (a pure function of the seed)
    train, held_out = make_clips(scale.clips, seed=config.seed)
    if config.workers > 1 and config.global_batch > len(train):  # the shards would not be equal
        raise ValueError(
            f"batch_size: {config.batch_size} x {config.workers} workers = {config.global_batch} exceeds the "
            f"{len(train)} training clips of scale {config.scale!r}; give a batch_size of at most "
            f"{len(train) // config.workers}"
        )
    steps_per_epoch = max(1, len(train) // config.global_batch)  # global batches (all workers)

    # 2. model and the per-step kit (optimizer groups per tower, schedule, clip, scaler, health)
    model = build_model(config)
    trainer = ctx.trainer(model, steps_per_epoch=steps_per_epoch)

    # 3. resume from the newest checkpoint, if any (model, trainer state, epochs done, last scores)
    resumed = ctx.resume(trainer)
    scores: dict[str, float] = dict(resumed.extra.get("scores", {}))

    # 4. train: one shuffled pass per epoch, evaluate + report + checkpoint after each
    all_video, all_ids = train.video.to(ctx.device), train.tokens.to(ctx.device)  # moved once
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        # this epoch's order depends on (seed, epoch) only, so a resume repeats it (epochs counted from 0 here)
        order_seed = config.seed * 1000 + run.epoch - 1
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(order_seed))
        order = order.to(ctx.device)
        for i in range(run.steps):
            # the global batch, and this worker's part of it (all of it in a single process)
            idx = ctx.shard(order[i * config.global_batch : (i + 1) * config.global_batch])
            video, ids = all_video[idx], all_ids[idx]  # (B, T, 1, S, S), (B, L)
            with ctx.autocast():
                v, t, logit_scale = trainer.wrapped(video, ids)  # DDP's forward on several workers
                loss = info_nce(v, t, logit_scale)
            if trainer.monitor is not None:
                trainer.monitor.observe_output("text_embedding", t.detach())
                trainer.monitor.observe_output("video_embedding", v.detach())
            trainer.step(loss)
        scores = evaluate(model, held_out, ctx)
        trainer.scheduler.step_metric(scores[metric])
        ctx.save_progress(trainer, epochs_done=run.epoch, extra={"scores": scores})
        ctx.report(scores[metric], trainer.global_step)
    if not scores:  # no epoch trained here or before a resume (none planned)
        scores = evaluate(model, held_out, ctx)
    return scores[metric]
