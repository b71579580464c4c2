"""Real SQLite studies written the way the sweep engine writes them (Contract 4 attrs).

``build_study`` runs ``study.optimize`` over a pure-python objective whose trial outcome is
fixed by its number: completes, health prunes with reasons, an underperforming prune and a
failure, plus one trial left RUNNING with a latest health report.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.trial import TrialState

from gradsweep.spaces.trial_config import MetricConfig, TowerConfig, TrialConfig

TEXT_REASON_1 = "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 40-80)"
TEXT_REASON_2 = "text_encoder grad norm 2.2e-07 < 1e-06 for 5 checks (steps 60-100)"
NONFINITE_REASON = "non-finite loss at step 60"
MEDIAN_REASON = "value 0.1 at step 40 worse than median 0.45 of 3 trials (MedianPruner)"
FAIL_REASON = "RuntimeError: shapes (4, 8) and (16,) mismatch\n  File objective.py, line 3"
SPACE = {
    "name": "demo-space",
    "objective": "demo",
    "towers": [{"name": "video_backbone"}, {"name": "text_encoder"}],
}
VALUES = {0: 0.41, 2: 0.73, 6: 0.58, 7: 0.66}
TOWERS = ("video_backbone", "text_encoder")


def _history(number: int, steps: int, *, collapse: bool = False, explode: bool = False) -> list[dict]:
    out = []
    for i, step in enumerate(range(20, steps + 1, 20)):
        text = 0.5 * (0.05**i if collapse else 1.0 / (1 + i))
        video = math.inf if explode and step == steps else 1.0 + 0.1 * number + i
        verdict = "unstable" if (collapse and i >= 2) or (explode and step == steps) else "healthy"
        out.append(
            {
                "step": step,
                "verdict": verdict,
                "metrics": {
                    "health/video_backbone/grad_norm_pre": video,
                    "health/text_encoder/grad_norm_pre": text,
                    "health/grad_norm_global": math.hypot(video, text),
                    "health/loss": 2.0 - 0.01 * step,
                },
            }
        )
    return out


def config_for(params: dict, seed: int = 0) -> TrialConfig:
    """The resolved TrialConfig a trial with ``params`` trains with."""
    return TrialConfig(
        objective="demo",
        seed=seed,
        metric=MetricConfig(name="recall@1"),
        towers=[
            TowerConfig(name=t, patterns=[f"{t}.*"], lr=params[f"towers.{t}.lr"], weight_decay=0.05)
            for t in TOWERS
        ],
        extras={"loss_variant": params["loss_variant"]},
        params=params,
    )


def objective(trial: optuna.Trial) -> float:
    params = {
        "towers.video_backbone.lr": trial.suggest_float("towers.video_backbone.lr", 1e-5, 1e-2, log=True),
        "towers.text_encoder.lr": trial.suggest_float("towers.text_encoder.lr", 1e-6, 1e-3, log=True),
        "loss_variant": trial.suggest_categorical("loss_variant", ["einsum", "stable"]),
    }
    n = trial.number
    trial.set_user_attr("gradsweep.config", config_for(params, seed=n).to_dict())
    if n == 0:
        trial.set_user_attr("gradsweep.baseline", "after")
    for step in (20, 40):
        trial.report(0.1 * step / 40 + 0.01 * n, step)
    if n in (1, 4):
        reason, step = (TEXT_REASON_1, 80) if n == 1 else (TEXT_REASON_2, 100)
        trial.set_user_attr("gradsweep.health.history", _history(n, step, collapse=True))
        trial.set_user_attr("gradsweep.prune.kind", "unstable")
        trial.set_user_attr("gradsweep.prune.reason", reason)
        trial.set_user_attr("gradsweep.prune.step", step)
        raise optuna.TrialPruned(reason)
    if n == 3:
        trial.set_user_attr("gradsweep.health.history", _history(n, 60, explode=True))
        trial.set_user_attr("gradsweep.prune.kind", "unstable")
        trial.set_user_attr("gradsweep.prune.reason", NONFINITE_REASON)
        trial.set_user_attr("gradsweep.prune.step", 60)
        raise optuna.TrialPruned(NONFINITE_REASON)
    if n == 5:
        trial.set_user_attr("gradsweep.prune.kind", "underperforming")
        trial.set_user_attr("gradsweep.prune.reason", MEDIAN_REASON)
        trial.set_user_attr("gradsweep.prune.step", 40)
        raise optuna.TrialPruned(MEDIAN_REASON)
    if n == 8:
        trial.set_user_attr("gradsweep.fail.reason", FAIL_REASON)
        raise RuntimeError("shapes (4, 8) and (16,) mismatch")
    trial.set_user_attr("gradsweep.health.history", _history(n, 120))
    return VALUES[n]


def build_study(path: Path | str, name: str = "demo", *, n_trials: int = 9, running: bool = True) -> str:
    """Create the study at ``path`` (a SQLite file, or any storage URL) and return the storage URL.

    Trials 0, 2, 6, 7 complete (best: 2 with 0.73; 0 is the ``after`` baseline), 1 and 4 are
    pruned for text-tower grad collapse, 3 for a non-finite loss, 5 as underperforming, 8 fails;
    with ``running`` one more trial stays RUNNING with a WARNING health report.
    """
    url = path if isinstance(path, str) and "://" in path else f"sqlite:///{path}"
    study = optuna.create_study(
        study_name=name, storage=url, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.set_user_attr("gradsweep.space", SPACE)
    study.set_user_attr("gradsweep.objective", "demo")
    study.set_user_attr("gradsweep.metric", "recall@1")
    study.set_user_attr("gradsweep.direction", "maximize")
    study.set_user_attr("gradsweep.version", "0.1.0")
    study.set_user_attr("gradsweep.scale", "tiny")
    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    if running:
        trial = study.ask()
        trial.set_user_attr(
            "gradsweep.health.latest",
            {
                "step": 40,
                "verdict": "warning",
                "reasons": ["text_encoder decay/grad ratio 2.5 > 2 for 3 checks"],
                "metrics": {"health/loss": 1.2},
            },
        )
    return url


def build_pruned_only(path: Path, name: str = "nothing-done") -> str:
    """A study whose trials were all pruned or failed (no COMPLETE trial)."""
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("towers.all.lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("gradsweep.prune.kind", "unstable")
        trial.set_user_attr("gradsweep.prune.reason", NONFINITE_REASON)
        raise optuna.TrialPruned(NONFINITE_REASON)

    study.optimize(objective, n_trials=2)
    return url


PAUSE_REASON_1 = (
    "paused: predicted final 0.3 +- 0.05 at step 20 (own-curve fit); chance to beat the best 0.5: 0.1%; "
    "checkpoint at step 20 kept"
)
PAUSE_REASON_2 = (
    "paused: predicted final 0.2 +- 0.02 at step 20 (own-curve fit); chance to beat the best 0.5: 0.0%; "
    "checkpoint at step 20 kept"
)
PAUSE_REASON_4 = (
    "paused: predicted final 0.45 +- 0.03 at step 40 (population 2 curves + own-curve fit); chance to beat "
    "the best 0.5: 4.0%; checkpoint at step 40 kept"
)


def _entries(steps: range | list[int], grad: float) -> list[dict]:
    return [
        {
            "step": s,
            "verdict": "healthy",
            "metrics": {"health/text_encoder/grad_norm_pre": grad + s, "health/loss": 3.0 - 0.01 * s},
        }
        for s in steps
    ]


def build_freeze_thaw(url: str = "sqlite:///:memory:", name: str = "ft") -> optuna.Study:
    """A ``--pruner freeze-thaw`` study as the Ray bridge writes it (maximize, 5 configs, 2 thaws).

    * #0 COMPLETE 0.5;
    * #1 paused at step 20 (checkpoint 20), thawed as #4, which is paused again at 40 and thawed as
      #5, which completes with 0.8 (the best): one config, three trials;
    * #2 paused at step 20, never thawed;
    * #3 pruned ``unstable``; #6 FAIL.

    #4's history starts with #1's copied entries (as the bridge copies them), #5's holds only its own
    steps (the curve must still be one). Thaws carry ``gradsweep.thaw_of`` and the paused trial's
    intermediate values up to its checkpoint.
    """
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("gradsweep.metric", "recall@1")
    dist = {"towers.text_encoder.lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)}

    def add(state: TrialState, lr: float, values: dict[int, float], attrs: dict, value: float | None = None):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params={"towers.text_encoder.lr": lr},
                distributions=dist,
                intermediate_values=values,
                user_attrs=attrs,
            )
        )

    def paused(step: int, reason: str) -> dict:
        return {
            "gradsweep.prune.kind": "paused",
            "gradsweep.prune.reason": reason,
            "gradsweep.prune.step": step,
            "gradsweep.pause": {"step": step, "checkpoint": f"/runs/ckpt_{step}", "checkpoint_step": step},
        }

    curve = {s: s / 100 for s in range(10, 70, 10)}  # config B's whole curve, 10..60
    add(TrialState.COMPLETE, 1e-3, {s: 0.5 * s / 60 for s in curve}, {"gradsweep.health.history": _entries(range(10, 70, 10), 1.0)}, 0.5)  # fmt: skip
    add(TrialState.PRUNED, 2e-3, {10: 0.1, 20: 0.2}, {**paused(20, PAUSE_REASON_1), "gradsweep.health.history": _entries([10, 20], 2.0)})  # fmt: skip
    add(TrialState.PRUNED, 3e-3, {10: 0.1, 20: 0.15}, {**paused(20, PAUSE_REASON_2), "gradsweep.health.history": _entries([10, 20], 3.0)})  # fmt: skip
    add(TrialState.PRUNED, 4e-3, {10: 0.05}, {"gradsweep.prune.kind": "unstable", "gradsweep.prune.reason": NONFINITE_REASON, "gradsweep.prune.step": 10})  # fmt: skip
    add(TrialState.PRUNED, 2e-3, {s: v for s, v in curve.items() if s <= 40}, {**paused(40, PAUSE_REASON_4), "gradsweep.thaw_of": 1, "gradsweep.health.history": _entries([10, 20, 30, 40], 2.0)})  # fmt: skip
    add(TrialState.COMPLETE, 2e-3, curve, {"gradsweep.thaw_of": 4, "gradsweep.health.history": _entries([50, 60], 2.0)}, 0.8)  # fmt: skip
    add(TrialState.FAIL, 5e-3, {}, {"gradsweep.fail.reason": "RuntimeError: boom"})
    return study
