"""A loop that keeps its own optimizer step (as Hugging Face ``Trainer`` or accelerate loops do),
watched by gradsweep: a GRU character language model on generated text, with gradient accumulation.

Run it in a sweep:   gradsweep launch examples/own_step/space.yaml -n 6
Run one config:      gradsweep try --space examples/own_step/space.yaml --baseline start
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, LENGTH = 16, 33


def generated_text(n: int, seed: int) -> torch.Tensor:
    """``n`` sequences of a random first-order Markov chain over ``VOCAB`` symbols: (n, LENGTH)."""
    g = torch.Generator().manual_seed(seed)
    transitions = torch.softmax(torch.randn(VOCAB, VOCAB, generator=g) * 3.0, dim=-1)
    out = torch.empty(n, LENGTH, dtype=torch.long)
    out[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(1, LENGTH):
        out[:, t] = torch.multinomial(transitions[out[:, t - 1]], 1, generator=g).squeeze(1)
    return out


class CharLM(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(self.embed(tokens))
        return self.head(hidden)  # (B, T, VOCAB) next-symbol logits


def next_symbol_loss(model: CharLM, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))


def objective(config, ctx) -> float:
    """Train per the trial's config; the sweep minimises the validation loss (nats per symbol)."""
    text = generated_text(768, config.seed).to(ctx.device)
    train, val = text[:512], text[512:]  # one chain: held-out sequences of the same source
    micro, accumulate = config.batch_size, config.accumulation_steps
    steps_per_epoch = len(train) // (micro * accumulate)
    model = CharLM()
    trainer = ctx.trainer(model, steps_per_epoch=steps_per_epoch)  # gradsweep: the trial's parts
    opt, sched, scaler = trainer.optimizer, trainer.scheduler, trainer.scaler
    watch = trainer.watch()  # gradsweep: health from opt.step() itself
    g = torch.Generator().manual_seed(config.seed)
    value = math.nan
    for run in trainer.epochs():  # the config's stages, epoch by epoch
        order = torch.randperm(len(train), generator=g).to(ctx.device)
        for step in range(run.steps):
            for k in range(accumulate):  # your own gradient accumulation
                start = (step * accumulate + k) * micro
                with ctx.autocast():
                    loss = next_symbol_loss(model, train[order[start : start + micro]])
                scaler.scale(loss / accumulate).backward()
                watch.loss(loss)  # gradsweep: the loss the health rules judge
            scaler.unscale_(opt)
            watch.clip()  # gradsweep: the config's clipping, per tower then global
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
        with torch.no_grad():
            value = next_symbol_loss(model, val).item()
        ctx.report(value if math.isfinite(value) else 1e6, trainer.global_step)  # gradsweep: may prune
    return value if math.isfinite(value) else 1e6
