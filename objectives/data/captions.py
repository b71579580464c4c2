"""Template captions with synonyms for moving digits, and a tiny word tokenizer.

A caption names a digit (``"seven"`` or ``"7"``) and a motion through one of several
synonymous phrases: ``"the digit seven drifting left"``, ``"a 7 moving to the left"``. The
vocabulary is closed (every word any template can produce), so the tokenizer never meets an
unknown word on generated data; ``<unk>`` exists for user text.

Example:
    >>> tok = Tokenizer.build()
    >>> ids = tok.encode("a 7 moving to the left", length=8)
    >>> tok.decode(ids)
    'a 7 moving to the left'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MOTIONS = ("left", "right", "up", "down", "clockwise", "counterclockwise")

# Synonymous phrases per motion; every phrase names its motion unambiguously.
MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("drifting left", "moving to the left", "sliding left", "heading left"),
    "right": ("drifting right", "moving to the right", "sliding right", "heading right"),
    "up": ("rising", "moving up", "drifting upward", "climbing"),
    "down": ("falling", "moving down", "drifting downward", "sinking"),
    "clockwise": ("rotating clockwise", "spinning clockwise", "turning clockwise"),
    "counterclockwise": ("rotating counterclockwise", "spinning anticlockwise", "turning anticlockwise"),
}

# "{d}" is the digit's word, "{n}" its numeral, "{m}" the motion phrase.
TEMPLATES = ("the digit {d} {m}", "a {n} {m}", "{d} {m}", "the number {d} {m}", "a {d} that is {m}")

PAD, UNK = "<pad>", "<unk>"


def caption(digit: int, motion: str, rng: np.random.Generator) -> str:
    """One random caption for ``digit`` doing ``motion``.

    Raises:
        ValueError: if ``digit`` is outside 0..9 or ``motion`` is not in :data:`MOTIONS`.
    """
    if not 0 <= digit <= 9:
        raise ValueError(f"digit must be in 0..9 but got {digit}")
    if motion not in MOTION_PHRASES:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)} but got {motion!r}")
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    phrases = MOTION_PHRASES[motion]
    phrase = phrases[int(rng.integers(len(phrases)))]
    return template.format(d=DIGIT_WORDS[digit], n=str(digit), m=phrase)


def digit_caption(digit: int, rng: np.random.Generator) -> str:
    """A caption naming only the digit (``"the digit seven"``, ``"a 7"``), for still views."""
    if not 0 <= digit <= 9:
        raise ValueError(f"digit must be in 0..9 but got {digit}")
    forms = (f"the digit {DIGIT_WORDS[digit]}", f"a {digit}", DIGIT_WORDS[digit], f"the number {digit}")
    return forms[int(rng.integers(len(forms)))]


def _all_words() -> list[str]:
    words: set[str] = set(DIGIT_WORDS) | {str(i) for i in range(10)}
    for template in TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    for phrases in MOTION_PHRASES.values():
        for phrase in phrases:
            words.update(phrase.split())
    return sorted(words)


@dataclass(frozen=True)
class Tokenizer:
    """Whitespace word tokenizer over a fixed vocabulary; id 0 is padding, id 1 unknown."""

    vocab: tuple[str, ...]

    @classmethod
    def build(cls) -> Tokenizer:
        """The tokenizer whose vocabulary covers every generated caption."""
        return cls((PAD, UNK, *_all_words()))

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def max_words(self) -> int:
        """Longest caption any template can produce, in words."""
        longest_phrase = max(len(p.split()) for ps in MOTION_PHRASES.values() for p in ps)
        longest_template = max(len(t.split()) for t in TEMPLATES)
        return longest_template - 1 + longest_phrase

    def encode(self, text: str, *, length: int) -> list[int]:
        """Token ids of ``text``, cut or right-padded with 0 to ``length``."""
        index = {w: i for i, w in enumerate(self.vocab)}
        ids = [index.get(w, 1) for w in text.lower().split()][:length]
        return ids + [0] * (length - len(ids))

    def decode(self, ids: list[int]) -> str:
        """Words of non-padding ``ids`` joined by spaces."""
        return " ".join(self.vocab[i] for i in ids if i != 0)

    def batch(self, texts: list[str], *, length: int | None = None) -> torch.Tensor:
        """``(N, length)`` int64 ids; ``length`` defaults to :attr:`max_words`."""
        n = length if length is not None else self.max_words
        return torch.tensor([self.encode(t, length=n) for t in texts], dtype=torch.long)
