"""A two-tower recommender on generated implicit feedback, scored by held-out recall@10.

Data (generated from ``config.seed``, nothing downloaded): users and items get hidden taste
vectors; each user picks items with probability ``softmax(taste . item / sqrt(k) * SHARPNESS +
popularity)``, drawn without replacement. Of each user's picks, :data:`HELD_OUT` are held out;
the rest are the training interactions. Users and items also have observed side features (a
random projection of the hidden vector plus noise), so the towers can generalise past their ID
embeddings.

Model: a ``user_tower`` (ID embedding + side features -> MLP) and an ``item_tower`` (likewise);
the score of a pair is the dot product of the two outputs over ``extras.temperature``. Training:
in-batch sampled softmax (each user's positive item against the batch's other items), so the
score is unnormalised and a large LR can blow the embeddings up. Metric: recall@10 of the
held-out items, ranking every item the user did not train on; reported and checkpointed after
every epoch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LATENT = 8
SHARPNESS = 2.0
HELD_OUT = 3
K = 10


@dataclass(frozen=True)
class Size:
    users: int
    items: int
    picks: int  # interactions per user, held-out ones included
    width: int  # tower MLP width; the output has width // 2 dimensions
    batch: int


#: scale -> problem and model size
SIZES = {
    "tiny": Size(users=160, items=120, picks=10, width=32, batch=64),
    "small": Size(users=800, items=400, picks=16, width=64, batch=256),
    "full": Size(users=6000, items=3000, picks=30, width=128, batch=512),
}


@dataclass(frozen=True)
class Feedback:
    """Generated interactions: training pairs, held-out items per user, and side features."""

    user_features: torch.Tensor  # (U, F)
    item_features: torch.Tensor  # (I, F)
    train_users: torch.Tensor  # (N,) user index of each training pair
    train_items: torch.Tensor  # (N,) item index of each training pair
    seen: torch.Tensor  # (U, I) bool: trained on (masked out when ranking)
    held_out: torch.Tensor  # (U, I) bool: the items to retrieve


@functools.cache
def feedback(seed: int, scale: str) -> Feedback:
    """The interactions of ``scale`` for data seed ``seed`` (deterministic; cached per process)."""
    size = SIZES[scale]
    g = torch.Generator().manual_seed(10_000 + seed)
    taste = torch.randn(size.users, LATENT, generator=g)
    item = torch.randn(size.items, LATENT, generator=g)
    popularity = torch.randn(size.items, generator=g)
    logits = taste @ item.T / math.sqrt(LATENT) * SHARPNESS + popularity
    gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=g).clamp_min(1e-12)))
    picks = (logits + gumbel).topk(size.picks, dim=1).indices  # (U, picks), without replacement
    order = torch.rand(picks.shape, generator=g).argsort(dim=1)
    picks = picks.gather(1, order)
    rows = torch.arange(size.users).unsqueeze(1)
    seen = torch.zeros(size.users, size.items, dtype=torch.bool)
    held_out = torch.zeros_like(seen)
    seen[rows, picks[:, HELD_OUT:]] = True
    held_out[rows, picks[:, :HELD_OUT]] = True
    n_features = 2 * LATENT
    user_features = taste @ torch.randn(LATENT, n_features, generator=g) / math.sqrt(LATENT)
    item_features = item @ torch.randn(LATENT, n_features, generator=g) / math.sqrt(LATENT)
    user_features += 0.7 * torch.randn(user_features.shape, generator=g)
    item_features += 0.7 * torch.randn(item_features.shape, generator=g)
    train_users, train_items = seen.nonzero(as_tuple=True)
    return Feedback(user_features, item_features, train_users, train_items, seen, held_out)


class Tower(nn.Module):
    """ID embedding and side features -> a small MLP -> the tower's output vector."""

    def __init__(self, n: int, n_features: int, width: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n, width // 2)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.mlp = nn.Sequential(
            nn.Linear(width // 2 + n_features, width), nn.ReLU(), nn.Linear(width, width // 2)
        )

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.embedding(ids), features], dim=-1))


class TwoTower(nn.Module):
    def __init__(self, users: int, items: int, n_features: int, width: int) -> None:
        super().__init__()
        self.user_tower = Tower(users, n_features, width)
        self.item_tower = Tower(items, n_features, width)


@torch.no_grad()
def recall_at_k(model: TwoTower, data: Feedback, device: str, k: int = K) -> float:
    """Mean over users of the share of their held-out items in their top ``k`` unseen items."""
    model.eval()
    users = model.user_tower(torch.arange(len(data.seen), device=device), data.user_features.to(device))
    items = model.item_tower(torch.arange(data.seen.shape[1], device=device), data.item_features.to(device))
    model.train()
    scores = (users @ items.T).float().cpu()
    if not torch.isfinite(scores).all():
        return 0.0  # a diverged model retrieves nothing
    scores[data.seen] = -math.inf
    top = scores.topk(k, dim=1).indices
    hits = data.held_out.gather(1, top).sum(dim=1).float()
    return float((hits / data.held_out.sum(dim=1).float()).mean())


def objective(config, ctx) -> float:
    """Train both towers per the trial's config; return held-out recall@10."""
    size = SIZES[config.scale]
    temperature = float(config.extra("temperature", 0.1))
    data = feedback(config.seed, config.scale)
    user_features, item_features = data.user_features.to(ctx.device), data.item_features.to(ctx.device)
    users, items = data.train_users.to(ctx.device), data.train_items.to(ctx.device)
    torch.manual_seed(config.seed)  # the towers' initial weights
    model = TwoTower(len(data.seen), data.seen.shape[1], user_features.shape[1], size.width)
    trainer = ctx.trainer(model, steps_per_epoch=len(users) // size.batch)
    resumed = ctx.resume(trainer)  # a paused trial goes on after its last saved epoch
    value = float(resumed.extra.get("recall", 0.0))
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        # the epoch's order depends on (seed, epoch) only, so a resumed run repeats it
        perm = torch.randperm(
            len(users), generator=torch.Generator().manual_seed(config.seed * 1000 + run.epoch)
        )
        perm = perm.to(ctx.device)
        for i in range(run.steps):
            idx = perm[i * size.batch : (i + 1) * size.batch]
            u, v = users[idx], items[idx]
            with ctx.autocast():
                zu = model.user_tower(u, user_features[u])
                zv = model.item_tower(v, item_features[v])
                logits = zu @ zv.T / temperature  # (B, B): each user's positive on the diagonal
            # a user's other positives in the batch are not negatives
            same = (v.unsqueeze(0) == v.unsqueeze(1)) & ~torch.eye(
                len(idx), dtype=torch.bool, device=ctx.device
            )
            loss = F.cross_entropy(
                logits.float().masked_fill(same, -1e9), torch.arange(len(idx), device=ctx.device)
            )
            trainer.step(loss)
        value = recall_at_k(model, data, ctx.device)
        ctx.save_progress(trainer, epochs_done=run.epoch, extra={"recall": value})
        ctx.report(value, trainer.global_step)
    return value
