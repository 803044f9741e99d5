"""Fitting the calibrated simulator's shape parameters to a measured TRIM-Thr curve, and the
out-of-sample checks built on it (fit on one curve, predict another).

The fit is a coordinate search over a grid per parameter (score shifts d_ok, d_err, d_post, the
strong-length correlation ρ, the draft-length exponent γ), minimising

    mean |Δaccuracy| / 0.03 + mean |Δfrac| / 0.05 + mean |ΔC̄| / max(0.2·C̄_meas, 10)
    + mean |Δdiscarded| / max(0.2·discarded_meas, 10) + mean |Δcalls| / max(0.2·calls_meas, 0.1)

over the measured rows with 0 < k < 1, on its own seed. Each term is an error in units of its
tolerance (accuracy ±0.03, strong-token fraction ±0.05, strong tokens, discarded draft tokens
and strong calls per problem ±20 % or ±10 tokens / ±0.1 calls). Every term is a column of the
measured TRIM-Thr rows, so a fit on them leaves the TRIM-POMDP curve out of sample.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.sim.calibrated import CalibratedSimulator
from trimpomdp.sim.engine import rollout, threshold_act
from trimpomdp.sim.scenario import RunResult, Scenario

#: parameter name -> grid of values tried by the coordinate search
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "d_ok": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    "d_err": (0.0, 0.5, 1.0, 1.5, 2.0),
    "d_post": (1.0, 2.0, 3.0, 4.0, 5.0),
    "strong_len_corr": (0.0, 0.15, 0.3, 0.45, 0.6),
    "draft_len_exp": (0.6, 0.7, 0.8, 0.9, 1.0),
    "ok_logit_scale": (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "weak_difficulty_sd": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    "score_difficulty": (0.0, 0.25, 0.5, 1.0, 1.5, 2.0),
}
SHIFT_NAMES = ("d_ok", "d_err", "d_post")


def tolerance_errors(sim: Mapping[str, float], meas: Mapping[str, Any]) -> dict[str, float]:
    """Signed errors of one simulated point against one measured release row, and the errors in
    units of the goal tolerances (accuracy ±0.03, strong tokens ±20 % or ±10 tokens)."""
    ta = float(meas["avg_target_tokens_per_question"])
    d_acc = float(sim["accuracy"]) - float(meas["accuracy"])
    d_tok = float(sim["mean_strong_tokens"]) - ta
    return {"d_acc": d_acc, "d_tokens": d_tok,
            "d_tokens_rel": d_tok / ta if ta else float("nan"),
            "d_calls": float(sim["mean_strong_calls"]) - float(meas["avg_target_calls_per_question"]),
            "d_frac": float(sim["target_token_frac"]) - float(meas["target_token_frac"]),
            "acc_ok": abs(d_acc) <= 0.03, "tokens_ok": abs(d_tok) <= max(0.2 * ta, 10.0)}


def summary_with_se(res: RunResult) -> dict[str, Any]:
    """``res.summary()`` plus simulation standard errors of strong tokens, calls and fraction."""
    s = res.summary()
    n = max(1, res.correct.size)
    s["mean_strong_tokens_se"] = float(np.std(res.strong_tokens) / np.sqrt(n))
    s["mean_strong_calls_se"] = float(np.std(res.strong_calls) / np.sqrt(n))
    tot = res.strong_tokens + res.weak_kept + res.weak_discarded
    # ratio estimator: se of sum(st)/sum(tot) by the delta method
    f = s["target_token_frac"]
    resid = res.strong_tokens - f * tot
    s["target_token_frac_se"] = float(np.std(resid) / np.sqrt(n) / max(np.mean(tot), 1e-12))
    return s


def thr_curve(sc: Scenario, ks: Sequence[float]) -> list[dict[str, Any]]:
    """Simulated TRIM-Thr summaries (with SEs) at thresholds ``ks``."""
    return [summary_with_se(rollout(sc, threshold_act(float(k)), f"thr:{k:g}")) for k in ks]


OBJECTIVES = {"all": ("mae_accuracy", "mae_token_frac", "mean_tokens_tol", "mean_discarded_tol",
                      "mean_calls_tol"),
              "tolerance": ("mae_accuracy", "mae_token_frac", "mean_discarded_tol")}
_SCALE = {"mae_accuracy": 0.03, "mae_token_frac": 0.05}


def thr_loss(sim: CalibratedSimulator, rows: Sequence[Mapping[str, Any]], sc: Scenario | None = None,
             *, n: int = 4000, seed: int = 12345, objective: str = "all"
             ) -> tuple[float, dict[str, float]]:
    """Loss of this module's docstring on measured Thr rows; (loss, its parts).

    ``objective="all"`` sums all five terms; ``"tolerance"`` only accuracy, fraction (the Thr
    calibration tolerances) and discarded draft tokens (which identifies γ).
    """
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {sorted(OBJECTIVES)}. Got {objective!r}.",
                         field="objective")
    sc = sc if sc is not None else sim.scenario(n, seed)
    ea, ef, et, ed, ec = [], [], [], [], []
    for r in rows:
        s = rollout(sc, threshold_act(float(r["threshold"]))).summary()
        ta = float(r["avg_target_tokens_per_question"])
        td = float(r["avg_discarded_draft_tokens_per_question"])
        tc = float(r["avg_target_calls_per_question"])
        ea.append(abs(s["accuracy"] - float(r["accuracy"])))
        ef.append(abs(s["target_token_frac"] - float(r["target_token_frac"])))
        et.append(abs(s["mean_strong_tokens"] - ta) / max(0.2 * ta, 10.0))
        ed.append(abs(s["mean_weak_discarded"] - td) / max(0.2 * td, 10.0))
        ec.append(abs(s["mean_strong_calls"] - tc) / max(0.2 * tc, 0.1))
    parts = {"mae_accuracy": float(np.mean(ea)), "mae_token_frac": float(np.mean(ef)),
             "mean_tokens_tol": float(np.mean(et)), "mean_discarded_tol": float(np.mean(ed)),
             "mean_calls_tol": float(np.mean(ec))}
    loss = sum(parts[k] / _SCALE.get(k, 1.0) for k in OBJECTIVES[objective])
    return float(loss), parts


def shape_kwargs(params: Mapping[str, float]) -> dict[str, Any]:
    """``with_shape`` keyword arguments from a flat parameter dict (as :func:`params_of` gives)."""
    return {"score_shift": tuple(float(params[k]) for k in SHIFT_NAMES),
            "strong_len_corr": float(params["strong_len_corr"]),
            "draft_len_exp": float(params["draft_len_exp"]),
            "ok_logit_scale": float(params["ok_logit_scale"]),
            "weak_difficulty_sd": float(params.get("weak_difficulty_sd", 0.0)),
            "score_difficulty": float(params.get("score_difficulty", 0.0)),
            "error_score_corr": float(params.get("error_score_corr", 0.0)),
            "err_len_scale": float(params.get("err_len_scale", 1.0))}


def params_of(sim: CalibratedSimulator) -> dict[str, float]:
    """The shape parameters of a simulator as a flat dict."""
    d = dict(zip(SHIFT_NAMES, (float(x) for x in sim.score_shift)))
    d["strong_len_corr"] = float(sim.strong_len_corr)
    d["draft_len_exp"] = float(sim.draft_len_exp)
    d["ok_logit_scale"] = float(sim.ok_logit_scale)
    d["weak_difficulty_sd"] = float(sim.weak_difficulty_sd)
    d["score_difficulty"] = float(sim.score_difficulty)
    d["error_score_corr"] = float(getattr(sim, "error_score_corr", 0.0))
    if float(getattr(sim, "err_len_scale", 1.0)) != 1.0:  # omitted at 1: older fits stay equal
        d["err_len_scale"] = float(sim.err_len_scale)
    return d


def fit_thr(base: CalibratedSimulator, measured: Sequence[Mapping[str, Any]], *,
            grid: Mapping[str, Sequence[float]] | None = None,
            start: Mapping[str, float] | None = None, sweeps: int = 2, n: int = 4000,
            seed: int = 12345, objective: str = "all", progress: Callable[[str], None] | None = None
            ) -> tuple[CalibratedSimulator, dict[str, Any]]:
    """Coordinate search of the shape parameters on measured TRIM-Thr rows (0 < k < 1).

    ``base`` is a fitted simulator (endpoints); parameters missing from ``grid`` stay at their
    ``start`` value (default: ``base``'s). Returns the fitted simulator and a fit record.
    """
    rows = [r for r in measured if 0.0 < float(r["threshold"]) < 1.0]
    if not rows:
        raise InputError("measured must hold TRIM-Thr rows with 0 < threshold < 1.",
                         field="threshold")
    grid = dict(DEFAULT_GRID if grid is None else grid)
    cur = params_of(base)
    cur.update(start or {})
    cache: dict[tuple[float, ...], tuple[float, dict[str, float]]] = {}

    def evaluate(p: Mapping[str, float]) -> float:
        key = tuple(round(float(p[k]), 6) for k in sorted(p))
        if key not in cache:
            cache[key] = thr_loss(base.with_shape(**shape_kwargs(p)), rows, n=n, seed=seed,
                                  objective=objective)
        return cache[key][0]

    best = evaluate(cur)
    for sweep in range(max(1, sweeps)):
        changed = False
        for name, values in grid.items():
            for v in values:
                trial = dict(cur, **{name: float(v)})
                loss = evaluate(trial)
                if loss < best - 1e-12:
                    best, cur, changed = loss, trial, True
            if progress is not None:
                progress(f"sweep {sweep} {name}: {cur} loss {best:.4f}")
        if not changed:
            break
    key = tuple(round(float(cur[k]), 6) for k in sorted(cur))
    record = {"params": cur, "loss": best, "objective": objective, **cache[key][1], "n": n, "seed": seed,
              "n_rows": len(rows), "thresholds": [float(r["threshold"]) for r in rows],
              "evaluations": len(cache)}
    return base.with_shape(**shape_kwargs(cur)), record


__all__ = ["DEFAULT_GRID", "OBJECTIVES", "fit_thr", "params_of", "shape_kwargs", "summary_with_se",
           "thr_curve", "thr_loss",
           "tolerance_errors"]
