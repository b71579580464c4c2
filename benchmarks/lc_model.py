"""How well :func:`gradsweep.search.learning_curve.predict_final` predicts held-out synthetic finals.

For each seed, :func:`benchmarks._synthetic_curves.synthetic_curves` draws ``references + held_out``
curves of 8 reports; the first ``references`` are the finished trials, and each held-out curve's
first 1, 2 and 4 reports are the partial. Per prefix the table gives the mean absolute error of the
final value predicted by

* the model (``predict_final``),
* ``last value``: the last observed value,
* ``mean shift``: the last observed value plus the references' mean gain from that step to the end,

the model's MAE over the last-value MAE, and the share of held-out finals inside the model's
``mean +- 1.64 std`` (a 90% interval when calibrated). Both directions run (minimizing: error rate).

Usage::

    .venv/bin/python -m benchmarks.lc_model            # 40 seeds x (30 references + 30 held out)
    .venv/bin/python -m benchmarks.lc_model --seeds 4

The last line: ``LC model MAE / last-value MAE: X.XX (coverage of the 90% interval: Y.YY)``, pooled over
the prefixes and both directions.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks._synthetic_curves import synthetic_curves
from gradsweep.search.learning_curve import Z90, Curve, predict_final

PREFIXES = (1, 2, 4)


@dataclass(frozen=True)
class Scores:
    """Absolute errors of each predictor, and whether the model's 90% interval held the truth."""

    model: list[float]
    last_value: list[float]
    mean_shift: list[float]
    covered: list[bool]


def mean_shift(partial: Curve, references: Sequence[Curve]) -> float:
    """The last value plus the references' mean change from the partial's last step to their end."""
    index = partial.steps.index(partial.steps[-1])
    gains = [r.values[-1] - r.values[index] for r in references]
    return partial.values[-1] + float(np.mean(gains))


def score(seeds: Sequence[int], *, n_references: int, n_held_out: int, maximize: bool) -> dict[int, Scores]:
    """Errors per prefix length over the held-out curves of every seed."""
    out = {k: Scores([], [], [], []) for k in PREFIXES}
    for seed in seeds:
        curves = synthetic_curves(n_references + n_held_out, seed=seed, maximize=maximize)
        references, held_out = curves[:n_references], curves[n_references:]
        for curve in held_out:
            truth = curve.values[-1]
            for k in PREFIXES:
                partial = Curve(curve.steps[:k], curve.values[:k])
                p = predict_final(partial, curve.steps[-1], references, maximize=maximize)
                s = out[k]
                s.model.append(abs(p.mean - truth))
                s.last_value.append(abs(partial.values[-1] - truth))
                s.mean_shift.append(abs(mean_shift(partial, references) - truth))
                s.covered.append(abs(p.mean - truth) <= Z90 * p.std)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="seeds (studies) per direction")
    parser.add_argument("--references", type=int, default=30, help="finished curves per study")
    parser.add_argument("--held-out", type=int, default=30, help="predicted curves per study")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pooled = Scores([], [], [], [])
    print(
        "| direction | reports seen | n | model MAE | last-value MAE | mean-shift MAE | model / last | coverage 90% |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for maximize in (True, False):
        results = score(
            range(args.seeds), n_references=args.references, n_held_out=args.held_out, maximize=maximize
        )
        for k, s in results.items():
            model, last, shift = (float(np.mean(x)) for x in (s.model, s.last_value, s.mean_shift))
            print(
                f"| {'maximize' if maximize else 'minimize'} | {k} of 8 | {len(s.model)} | {model:.4f} | "
                f"{last:.4f} | {shift:.4f} | {model / last:.2f} | {np.mean(s.covered):.2f} |"
            )
            for mine, theirs in zip(
                (pooled.model, pooled.last_value, pooled.mean_shift, pooled.covered),
                (s.model, s.last_value, s.mean_shift, s.covered),
                strict=True,
            ):
                mine.extend(theirs)  # type: ignore[arg-type]
    n = len(pooled.model)
    elapsed = time.perf_counter() - started
    print(
        f"{n} predictions in {elapsed:.1f} s ({1000 * elapsed / max(n, 1):.2f} ms each, baselines included)"
    )
    ratio = float(np.mean(pooled.model)) / float(np.mean(pooled.last_value))
    coverage = float(np.mean(pooled.covered)) if n else math.nan
    print(f"LC model MAE / last-value MAE: {ratio:.2f} (coverage of the 90% interval: {coverage:.2f})")


if __name__ == "__main__":
    main()
