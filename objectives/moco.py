"""MoCo v3 style self-supervised training on scikit-learn digits (seed 001), scored by kNN accuracy.

Model: a small CNN ``backbone`` on 8x8 digits, an MLP ``projector`` and an MLP ``predictor``
(the three towers), plus a momentum (EMA) copy of backbone + projector as the key encoder.
Two augmented views per image; the loss is the symmetric InfoNCE
``ctr(q1, k2) + ctr(q2, k1)``, divided by two when ``extras.loss_reduction`` is ``mean``.
``sum`` reproduces seed 001's bug (the reported loss doubles: ~2 ln(B) at the start instead
of ~ln(B)). With AdamW the sum alone barely changes the updates (Adam is invariant to the loss
scale); the stall of seed 001 comes with its base LR 10x too low (1.5e-4 instead of 1.5e-3)
under the linear scaling rule ``lr = base_lr * batch / 256`` (``schedule.lr_scaling: linear``),
warmup and cosine decay. The health monitor's ``loss_stall`` rule (enabled in the preset) flags it.

Metric: ``knn_accuracy`` of the backbone's features on held-out digits (k-nearest neighbours
by cosine similarity); the memory bank is a few labelled training images (``Scale.bank_images``),
since with every training image labelled even random conv features score ~97% on digits and
the metric cannot tell representations apart; maximize.

With several DDP workers (``--workers-per-trial N``) every worker draws the same global batch of
``N * batch_size`` images and their two views, trains on its shard, and the keys of every worker
are the negatives (MoCo v3's ``concat_all_gather``). On CUDA the batch norms become
``SyncBatchNorm`` (MoCo v3 does the same), so N workers compute the update of one process with
an N times larger batch; on CPU, where torch has no SyncBatchNorm, each worker normalises its
own shard, which is where a CPU run of N workers differs from one process.

Extras: ``loss_reduction`` (``sum`` | ``mean``, default ``mean``), ``temperature`` (0.2),
``momentum`` (EMA coefficient of the key encoder, default per scale), ``knn_k`` (20).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsweep.objectives.api import TrialContext, refuse_accumulation
from gradsweep.objectives.data.digits_views import load_digits, split, subsample, two_views
from gradsweep.objectives.distributed import gather_detached, local_targets
from gradsweep.objectives.nets import Backbone
from gradsweep.spaces.trial_config import TrialConfig

METRICS = ("knn_accuracy",)
DEFAULT_METRIC = "knn_accuracy"
#: Other names it accepts for its default metric ("value": TrialConfig\'s unnamed default).
METRIC_ALIASES = ("value",)
DIRECTION = "maximize"
#: Runs as a trial of several DDP workers (``--workers-per-trial``).
DISTRIBUTED = True
PRESET = "moco.yaml"
LOSS_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class Scale:
    """Sizes for one ``config.scale``."""

    train_images: int | None  # None = the whole training split
    bank_images: int  # labelled training images in the kNN memory bank
    width: int  # conv channels of the backbone
    dim: int  # backbone feature size
    hidden: int  # projector / predictor hidden size
    out: int  # projection size
    momentum: float  # default EMA coefficient of the key encoder


SCALES = {
    "tiny": Scale(train_images=512, bank_images=100, width=8, dim=32, hidden=64, out=32, momentum=0.9),
    "small": Scale(train_images=None, bank_images=100, width=16, dim=64, hidden=256, out=64, momentum=0.99),
    "full": Scale(train_images=None, bank_images=200, width=64, dim=256, hidden=1024, out=256, momentum=0.99),
}


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """MoCo v3's projector/predictor shape: Linear-BN-ReLU-Linear."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class MoCo(nn.Module):
    """The online network: backbone -> projector -> predictor (the three towers)."""

    def __init__(self, s: Scale) -> None:
        super().__init__()
        self.backbone = Backbone(s.width, s.dim, relu_features=False)
        self.projector = mlp(s.dim, s.hidden, s.out)
        self.predictor = mlp(s.out, s.hidden, s.out)

    def forward(
        self, x: torch.Tensor, x2: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Queries of ``x``, ``(B, out)``; of both views when ``x2`` is given (one call, as DDP wants)."""
        q = self.predictor(self.projector(self.backbone(x)))
        return q if x2 is None else (q, self.predictor(self.projector(self.backbone(x2))))


class KeyEncoder(nn.Module):
    """Momentum copy of backbone + projector; never trained by the optimizer."""

    def __init__(self, online: MoCo) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(online.backbone)
        self.projector = copy.deepcopy(online.projector)
        self.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: MoCo, m: float) -> None:
        """EMA step ``key = m * key + (1 - m) * online``."""
        keys = [*self.backbone.parameters(), *self.projector.parameters()]
        online_params = [*online.backbone.parameters(), *online.projector.parameters()]
        torch._foreach_mul_(keys, m)
        torch._foreach_add_(keys, online_params, alpha=1.0 - m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))  # (B, out)


def contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between queries and keys of the same images (positives on the diagonal).

    Args:
        q: ``(B, D)`` queries; k: ``(B, D)`` keys (no gradient); in a trial of several workers the
            keys of all of them are the candidates.
        temperature: softmax temperature.

    Returns:
        The mean cross-entropy, a scalar (``ln(B)`` for uninformative features).
    """
    q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
    keys = gather_detached(k)  # every worker's keys, (N*B, D); k itself in a single process
    logits = q @ keys.T / temperature  # (B, N*B)
    target = local_targets(q.shape[0], q.device)  # this worker's own keys among all
    return F.cross_entropy(logits, target)


def symmetric_loss(l12: torch.Tensor, l21: torch.Tensor, reduction: str) -> torch.Tensor:
    """Combine the two directions: ``sum`` (seed 001's bug) or ``mean`` (the fix).

    Raises:
        ValueError: if ``reduction`` is not ``sum`` or ``mean``.
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(
            f"extras.loss_reduction must be one of {', '.join(LOSS_REDUCTIONS)}, got {reduction!r}"
        )
    total = l12 + l21
    return total if reduction == "sum" else 0.5 * total


@torch.no_grad()
def knn_accuracy(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, labels: torch.Tensor, k: int
) -> float:
    """Accuracy of a cosine-similarity k-nearest-neighbour vote (weighted by similarity).

    Args:
        bank: ``(N, D)`` labelled features; bank_labels: ``(N,)``.
        queries: ``(M, D)`` features to classify; labels: ``(M,)`` their true labels.
        k: neighbours per query (capped at N).

    Returns:
        The fraction of queries whose vote matches their label.
    """
    bank, queries = F.normalize(bank.float(), dim=1), F.normalize(queries.float(), dim=1)
    sims, idx = (queries @ bank.T).topk(min(k, bank.shape[0]), dim=1)  # (M, k)
    n_classes = int(max(bank_labels.max(), labels.max())) + 1
    votes = torch.zeros(queries.shape[0], n_classes, device=queries.device)  # (M, C)
    votes.scatter_add_(1, bank_labels[idx], (sims / 0.1).exp())
    return float((votes.argmax(dim=1) == labels).float().mean())


@torch.no_grad()
def embed(backbone: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Backbone features of ``x`` in eval mode, ``(N, dim)``."""
    was_training = backbone.training
    backbone.eval()
    out = torch.cat([backbone(x[i : i + batch].to(device)).float() for i in range(0, len(x), batch)])
    backbone.train(was_training)
    return out


def build_model(config: TrialConfig) -> MoCo:
    """The untrained online network for ``config`` (``gradsweep validate`` checks tower patterns on it)."""
    return MoCo(SCALES[config.scale])


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Train MoCo on digits per ``config``; return the final held-out kNN accuracy.

    Args:
        config: the trial's config (towers ``backbone``, ``projector``, ``predictor``).
        ctx: the trial context (device, trainer, reporting, checkpoints).

    Returns:
        kNN accuracy (in ``[0, 1]``) after the last epoch.

    Raises:
        ValueError: on an unknown ``scale``, ``metric.name`` or ``extras.loss_reduction``, or
            ``accumulation_steps`` > 1.
        TrialPruned: when the reporter stops the trial.
    """
    # 1. settings
    if config.scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {config.scale!r}")
    if config.metric.name not in (*METRICS, *METRIC_ALIASES):
        raise ValueError(f"metric.name must be one of {', '.join(METRICS)}, got {config.metric.name!r}")
    refuse_accumulation(config, "moco")
    s = SCALES[config.scale]
    reduction = str(config.extra("loss_reduction", "mean"))
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(
            f"extras.loss_reduction must be one of {', '.join(LOSS_REDUCTIONS)}, got {reduction!r}"
        )
    temperature = float(config.extra("temperature", 0.2))
    momentum = float(config.extra("momentum", s.momentum))
    knn_k = int(config.extra("knn_k", 20))

    # 2. data: all ten classes; the held-out split is only for the kNN score
    train, test = split(load_digits(), test_fraction=0.25, seed=config.seed)
    train = subsample(train, s.train_images, seed=config.seed)
    bank_set = subsample(train, s.bank_images, seed=config.seed + 1)  # the few labelled images
    batch = min(config.batch_size, len(train) // ctx.world_size)  # per worker
    global_batch = batch * ctx.world_size
    steps_per_epoch = len(train) // global_batch

    # 3. model, key encoder, trainer (optimizer, staged scheduler, scaler, clipper, health monitor)
    torch.manual_seed(config.seed)
    model = build_model(config)
    if ctx.world_size > 1 and ctx.device.type == "cuda":  # batch statistics over the global batch
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    trainer = ctx.trainer(model, steps_per_epoch)
    key = KeyEncoder(model).to(ctx.device)

    # 4. resume from the newest checkpoint, if any (model, key encoder, trainer state, epochs done, history)
    resumed = ctx.resume(trainer, modules={"key": key})
    history = list(resumed.extra.get("history", []))

    # 5. train: stages -> epochs -> steps
    acc = float(history[-1]["knn_accuracy"]) if history else float("nan")
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        epoch, n_steps = run.epoch, run.steps
        # this epoch's order and views depend on (seed, epoch) only, so a resume repeats them
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train), generator=g)
        model.train()
        losses = []
        for i in range(n_steps):
            # a. two augmented views of a batch: (B, 1, 8, 8) each
            # (the views of the global batch, the same on every worker; then this worker's shard)
            x = train.x[order[i * global_batch : (i + 1) * global_batch]]
            v1, v2 = (ctx.shard(v).to(ctx.device) for v in two_views(x, g))
            # b. queries from the online network; EMA update, then keys from the key encoder
            with ctx.autocast():
                q1, q2 = trainer.wrapped(v1, v2)  # (B, out) each; DDP's forward on several workers
                with torch.no_grad():
                    key.update(model, momentum)
                    k1, k2 = key(v1), key(v2)  # (B, out)
            # c. symmetric contrastive loss, summed (seed 001) or averaged
            l12 = contrastive_loss(q1, k2, temperature)
            l21 = contrastive_loss(q2, k1, temperature)
            loss = symmetric_loss(l12, l21, reduction)
            trainer.step(loss)
            losses.append(loss.detach())

        # 6. kNN accuracy of the backbone's features: a few labelled training images vote
        bank = embed(model.backbone, bank_set.x, ctx.device)  # (N_bank, dim)
        queries = embed(model.backbone, test.x, ctx.device)  # (M, dim)
        acc = knn_accuracy(bank, bank_set.y.to(ctx.device), queries, test.y.to(ctx.device), knn_k)
        history.append({"epoch": epoch, "loss": float(torch.stack(losses).mean()), "knn_accuracy": acc})

        # 7. checkpoint (model, key encoder, trainer state, epochs done, history), then report (may prune)
        ctx.save_progress(trainer, epochs_done=epoch, modules={"key": key}, extra={"history": history})
        ctx.report(acc, trainer.global_step)
    return acc
