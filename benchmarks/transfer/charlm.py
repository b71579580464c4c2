"""A character-level transformer language model on Python's own standard-library source.

Towers: ``embed`` (token and position embeddings), ``blocks`` (two pre-norm transformer layers)
and ``head`` (final LayerNorm and the output projection). The sweep minimises ``val_loss``, the
next-character cross-entropy (nats) on held-out text. The corpus is read from the running
Python's standard library (nothing is downloaded): the same interpreter gives the same text.

Run one config:  gradsweep try --space benchmarks/spaces/transfer_charlm.yaml --params p.yaml
"""

from __future__ import annotations

import functools
import math
import sysconfig
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Standard-library modules whose source makes up the corpus, in order.
SOURCES = (
    "textwrap.py",
    "string.py",
    "shlex.py",
    "fnmatch.py",
    "heapq.py",
    "bisect.py",
    "glob.py",
    "difflib.py",
)
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))  # printable ASCII; anything else reads as "?"
VOCAB = len(CHARS)
#: scale -> (corpus characters, context length, width, steps per epoch)
SIZES = {"tiny": (40_000, 32, 32, 5), "small": (200_000, 64, 64, 50), "full": (200_000, 128, 128, 200)}


@functools.cache
def corpus(n_chars: int) -> torch.Tensor:
    """The first ``n_chars`` characters of :data:`SOURCES` as token ids: (n_chars,)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((root / name).read_text(encoding="utf-8") for name in SOURCES)[:n_chars]
    index = {c: i for i, c in enumerate(CHARS)}
    unknown = index["?"]
    return torch.tensor([index.get(c, unknown) for c in text], dtype=torch.long)


class Embed(nn.Module):
    def __init__(self, length: int, width: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tok(ids) + self.pos[: ids.shape[1]]


class CharTransformer(nn.Module):
    def __init__(self, length: int, width: int, layers: int = 2) -> None:
        super().__init__()
        self.embed = Embed(length, width)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, nhead=4, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, VOCAB))
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        mask = self.mask[: ids.shape[1], : ids.shape[1]]
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(x)  # (B, T, VOCAB) next-character logits


def windows(text: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Windows of ``length + 1`` characters at ``starts``: (len(starts), length + 1)."""
    return text[starts[:, None] + torch.arange(length + 1)]


def next_char_loss(model: CharTransformer, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.float().reshape(-1, VOCAB), batch[:, 1:].reshape(-1))


def objective(config, ctx) -> float:
    """Train per the trial's config; return the held-out next-character loss (nats)."""
    n_chars, length, width, steps_per_epoch = SIZES[config.scale]
    text = corpus(n_chars)
    split = int(len(text) * 0.9)
    train, held_out = text[:split], text[split:]
    g = torch.Generator().manual_seed(config.seed)
    val = windows(held_out, torch.arange(0, len(held_out) - length - 1, length)[:128], length).to(ctx.device)
    model = CharTransformer(length, width)
    trainer = ctx.trainer(
        model, steps_per_epoch=steps_per_epoch
    )  # gradsweep: optimizer, schedule, clip, health
    value = math.nan
    for run in trainer.epochs():
        model.train()
        for _ in range(run.steps):
            starts = torch.randint(0, len(train) - length - 1, (config.batch_size,), generator=g)
            with ctx.autocast():
                loss = next_char_loss(model, windows(train, starts, length).to(ctx.device))
            trainer.step(loss)  # gradsweep: backward, clip per tower, monitor, step, schedule
        model.eval()
        with torch.no_grad():
            value = next_char_loss(model, val).item()
        ctx.report(value if math.isfinite(value) else 1e6, trainer.global_step)  # gradsweep: may prune
    return value
