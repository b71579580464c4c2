"""A GRU encoder-decoder that learns to sort a random digit sequence (teacher forcing in training).

Towers: ``embed`` (the token embedding both GRUs read), ``encoder`` (a GRU over the input digits)
and ``decoder`` (a GRU started from the encoder's last state, and its output projection). A
sequence is 8 to 12 digits, left-padded so the encoder ends on its last digit; the target is the
same digits sorted, then an end token. Training feeds the decoder the true previous token; the
sweep maximises ``val_token_accuracy``: greedy decoding (the decoder reads its own predictions)
of a fixed held-out set, scored over every target position up to and including the end token
(chance is about 1/13). The data are generated from ``config.seed``: nothing is downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIGITS = 10
PAD, BOS, EOS = DIGITS, DIGITS + 1, DIGITS + 2
VOCAB = DIGITS + 3
MIN_LEN, MAX_LEN = 8, 12
#: scale -> (embedding width, hidden width, steps per epoch)
SIZES = {"tiny": (16, 32, 5), "small": (32, 96, 25), "full": (64, 192, 50)}
VAL_SIZE = 512


def sequences(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random problems: inputs (n, MAX_LEN), left-padded; targets (n, MAX_LEN + 1), sorted + EOS, right-padded."""
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (n,), generator=g)
    digits = torch.randint(0, DIGITS, (n, MAX_LEN), generator=g)
    pos = torch.arange(MAX_LEN)
    real = pos[None, :] >= (MAX_LEN - lengths)[:, None]  # the last `length` positions
    src = torch.where(real, digits, torch.full_like(digits, PAD))
    ordered = torch.where(real, digits, torch.full_like(digits, DIGITS)).sort(dim=1).values  # digits first
    tgt = torch.full((n, MAX_LEN + 1), PAD, dtype=torch.long)
    tgt[:, :MAX_LEN] = torch.where(pos[None, :] < lengths[:, None], ordered, tgt[:, :MAX_LEN])
    tgt[torch.arange(n), lengths] = EOS
    return src, tgt


class Decoder(nn.Module):
    def __init__(self, embed_width: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(embed_width, hidden, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(x, h)
        return self.out(y), h


class Seq2Seq(nn.Module):
    def __init__(self, embed_width: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, embed_width)
        self.encoder = nn.GRU(embed_width, hidden, batch_first=True)
        self.decoder = Decoder(embed_width, hidden)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        _, h = self.encoder(self.embed(src))
        return h  # (1, B, hidden)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, VOCAB): the decoder reads BOS, then the true targets."""
        bos = torch.full_like(tgt[:, :1], BOS)
        logits, _ = self.decoder(self.embed(torch.cat([bos, tgt[:, :-1]], dim=1)), self.encode(src))
        return logits

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, steps: int) -> torch.Tensor:
        """Greedy decoding of ``steps`` tokens (B, steps), each step reading the last prediction."""
        h = self.encode(src)
        token = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
        out = []
        for _ in range(steps):
            logits, h = self.decoder(self.embed(token), h)
            token = logits.argmax(dim=-1)
            out.append(token)
        return torch.cat(out, dim=1)


def token_loss(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    logits = model(src, tgt)
    return F.cross_entropy(logits.float().reshape(-1, VOCAB), tgt.reshape(-1), ignore_index=PAD)


def token_accuracy(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor) -> float:
    """Greedy-decoding accuracy over the target's digits and its end token."""
    pred = model.greedy(src, tgt.shape[1])
    scored = tgt != PAD
    return ((pred == tgt) & scored).sum().item() / scored.sum().item()


def objective(config, ctx) -> float:
    """Train per the trial's config; return the held-out greedy token accuracy."""
    embed_width, hidden, steps_per_epoch = SIZES[config.scale]
    g = torch.Generator().manual_seed(config.seed)
    val_src, val_tgt = (t.to(ctx.device) for t in sequences(VAL_SIZE, g))
    model = Seq2Seq(embed_width, hidden)
    trainer = ctx.trainer(
        model, steps_per_epoch=steps_per_epoch
    )  # gradsweep: optimizer, schedule, clip, health
    accuracy = 0.0
    for run in trainer.epochs():
        model.train()
        for _ in range(run.steps):
            src, tgt = sequences(config.batch_size, g)
            with ctx.autocast():
                loss = token_loss(model, src.to(ctx.device), tgt.to(ctx.device))
            trainer.step(loss)  # gradsweep: backward, clip per tower, monitor, step, schedule
        model.eval()
        accuracy = token_accuracy(model, val_src, val_tgt)
        ctx.report(accuracy, trainer.global_step)  # gradsweep: may prune
    return accuracy
