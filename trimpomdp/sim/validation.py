"""Out-of-sample validation of the calibrated simulator against the TRIM release's measurements.

Protocol (``benchmarks/sim_validation.py`` runs it, ``docs/controller_and_simulation.md`` reports
it):

1. **Thr → POMDP.** Fit the simulator's shape parameters on the measured TRIM-Thr curve only
   (:func:`trimpomdp.sim.fitting.fit_thr`), then predict the release's *measured* TRIM-POMDP
   curve: the release's runtime rule step for step (:mod:`trimpomdp.sim.release_rule`:
   single-observation posterior from the release's reflected KDE, closeness gate 0.4, snapped
   table lookup, strong steps' scores in the min; ``rule="release-exact"``) at the release's λ
   values, with the policy solved exactly on the bundled release model. Per point: accuracy, strong
   tokens, strong calls and token fraction, simulated ± simulation SE, minus measured.
2. **Thr part → Thr rest.** Fit on a subset of the Thr thresholds, predict the others.
3. **Calibration uncertainty.** Refit on bootstrap resamples of the measured Thr rows (rows
   drawn with replacement), predict with each refit on its own seed; the spread of the
   predictions is the calibration + simulation uncertainty of the simulated mean. A measured
   point is "covered" when it lies in that interval widened by its own sampling SE
   (√(p(1 − p)/500) for accuracy).

The goal per POMDP point: accuracy within ±0.03 and strong tokens within ±20 % (or ±10 tokens).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing.pomdp import pomdp_factory
from trimpomdp.sim.calibrated import CalibratedSimulator
from trimpomdp.sim.engine import simulate
from trimpomdp.sim.fitting import (
    fit_thr,
    shape_kwargs,
    summary_with_se,
    thr_curve,
    tolerance_errors,
)
from trimpomdp.sim.release_rule import OBSERVE_STRONG_SCORES, release_factory
from trimpomdp.sim.scenario import Scenario
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

MEASURED_N = 500  # problems behind every measured release row (MATH-500)
METRICS = ("accuracy", "mean_strong_tokens", "mean_strong_calls", "target_token_frac")
MEAS_KEYS = {"accuracy": "accuracy", "mean_strong_tokens": "avg_target_tokens_per_question",
             "mean_strong_calls": "avg_target_calls_per_question",
             "target_token_frac": "target_token_frac"}


def pomdp_policies(model: TrimModel, lams: Sequence[float]) -> dict[float, Any]:
    """Exact TRIM-POMDP policies of ``model`` at each λ (solved once, reused across scenarios)."""
    solver = FiniteHorizonSolver()
    return {float(lam): solver.solve(TrimPOMDP(model=model, lam=float(lam))) for lam in lams}


#: runtime rules for the simulated TRIM-POMDP: ``"release-exact"`` is the release's loop step
#: for step (:mod:`trimpomdp.sim.release_rule`: strong steps' scores in the min, reflected KDE,
#: table lookup with snapped tokens / belief and no knowledge of the last step);
#: ``"release-approx"`` the earlier approximation (bilinear binned density, exact token count
#: and belief, ``final`` known, a regenerated step counting 1.0 in the min); ``"filter"`` the
#: Bayes filter (strong steps' scores observed).
RULES = ("release-exact", "release-approx", "filter")


def pomdp_curve(sc: Scenario, policies: Mapping[float, Any], *, rule: str = "release-exact"
                ) -> list[dict[str, Any]]:
    """Simulated TRIM-POMDP summaries (with SEs) per λ on scenario ``sc`` under ``rule``."""
    if rule not in RULES:
        raise InputError(f"rule must be one of {RULES}. Got {rule!r}.", field="rule")
    out = []
    for lam, pol in policies.items():
        if rule == "release-exact":
            make, obs = release_factory(pol), OBSERVE_STRONG_SCORES
        else:
            make = pomdp_factory(pol, belief="release" if rule == "release-approx" else "filter",
                                 record=False)
            obs = rule == "filter"
        s = summary_with_se(simulate(make, sc, observe_regenerated=obs))
        s["lam"] = lam
        out.append(s)
    return out


def compare(sim_rows: Sequence[Mapping[str, Any]], meas_rows: Sequence[Mapping[str, Any]],
            key: str) -> list[dict[str, Any]]:
    """Per-point table: simulated (± SE), measured, errors; ``key`` names the curve parameter."""
    out = []
    for s, m in zip(sim_rows, meas_rows):
        row: dict[str, Any] = {"param": float(m[key])}
        for k in METRICS:
            row[f"{k}_sim"] = float(s[k])
            row[f"{k}_se"] = float(s.get(f"{k}_se", float("nan")))
            row[f"{k}_meas"] = float(m[MEAS_KEYS[k]])
        row.update(tolerance_errors(s, m))
        out.append(row)
    return out


def _chi2_sf(x: float, k: int) -> float:
    """P(χ²_k > x) (scipy-free: regularised upper incomplete gamma by its series)."""
    a, t = 0.5 * k, 0.5 * x
    term = total = 1.0 / a
    for n in range(1, 500):
        term *= t / (a + n)
        total += term
        if term < total * 1e-15:
            break
    lower = total * np.exp(-t + a * np.log(t) - math.lgamma(a)) if t > 0 else 0.0
    return float(min(1.0, max(0.0, 1.0 - lower)))


def score(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate errors of a per-point table."""
    da = np.array([r["d_acc"] for r in rows])
    dt = np.array([r["d_tokens_rel"] for r in rows])
    # accuracy z-scores against the combined SE of the measured point (n = 500) and the simulation
    pm = np.array([r["accuracy_meas"] for r in rows])
    se = np.sqrt(pm * (1 - pm) / MEASURED_N + np.array([r["accuracy_se"] for r in rows]) ** 2)
    z = da / se
    return {"n_points": len(rows), "acc_z": [float(x) for x in z],
            "acc_chi2": float(np.sum(z ** 2)),
            "acc_chi2_p": float(_chi2_sf(float(np.sum(z ** 2)), len(rows))),
            "acc_mae": float(np.abs(da).mean()),
            "acc_max": float(np.abs(da).max()),
            "acc_within": int(sum(r["acc_ok"] for r in rows)),
            "tokens_mare": float(np.nanmean(np.abs(dt))),
            "tokens_within": int(sum(r["tokens_ok"] for r in rows)),
            "both_within": int(sum(r["acc_ok"] and r["tokens_ok"] for r in rows))}


def thr_to_pomdp(sim: CalibratedSimulator, thr_rows: Sequence[Mapping[str, Any]],
                 pomdp_rows: Sequence[Mapping[str, Any]], policies: Mapping[float, Any], *,
                 n: int = 4000, seed: int = 0, rule: str = "release-exact") -> dict[str, Any]:
    """Step 1 for an already Thr-fitted ``sim``: the in-sample Thr table and the POMDP table."""
    sc = sim.scenario(n, seed)
    inner = [r for r in thr_rows if 0.0 < float(r["threshold"]) < 1.0]
    thr = compare(thr_curve(sc, [r["threshold"] for r in inner]), inner, "threshold")
    pom = compare(pomdp_curve(sc, {float(r["cost_per_token"]): policies[float(r["cost_per_token"])]
                                   for r in pomdp_rows}, rule=rule), pomdp_rows, "cost_per_token")
    return {"thr": thr, "thr_score": score(thr), "pomdp": pom, "pomdp_score": score(pom)}


def split_thr(thr_rows: Sequence[Mapping[str, Any]], how: str) -> tuple[list[Any], list[Any]]:
    """(fit rows, held-out rows) of the inner Thr curve: ``"low"`` fits k ≤ 0.45 and predicts the
    rest, ``"high"`` the reverse, ``"alternate"`` fits every other point."""
    inner = sorted((r for r in thr_rows if 0.0 < float(r["threshold"]) < 1.0),
                   key=lambda r: float(r["threshold"]))
    if how == "low":
        fit = [r for r in inner if float(r["threshold"]) <= 0.45]
    elif how == "high":
        fit = [r for r in inner if float(r["threshold"]) > 0.45]
    elif how == "alternate":
        fit = inner[::2]
    else:
        raise ValueError(how)
    held = [r for r in inner if r not in fit]
    return fit, held


def thr_split_check(fit: Callable[[Sequence[Mapping[str, Any]]], CalibratedSimulator],
                    thr_rows: Sequence[Mapping[str, Any]], how: str, *, n: int = 4000,
                    seed: int = 0) -> dict[str, Any]:
    """Step 2: fit with ``fit(rows)`` on part of the Thr curve, predict the held-out points."""
    fit_rows, held = split_thr(thr_rows, how)
    sim = fit(fit_rows)
    sc = sim.scenario(n, seed)
    tab = compare(thr_curve(sc, [r["threshold"] for r in held]), held, "threshold")
    return {"split": how, "fit_thresholds": [float(r["threshold"]) for r in fit_rows],
            "table": tab, "score": score(tab)}


def bootstrap_predictions(base: CalibratedSimulator, thr_rows: Sequence[Mapping[str, Any]],
                          pomdp_rows: Sequence[Mapping[str, Any]], policies: Mapping[float, Any],
                          *, start: Mapping[str, float], b: int = 20, n: int = 2000,
                          fit_n: int = 2000, seed: int = 0, sweeps: int = 1,
                          grid: Mapping[str, Sequence[float]] | None = None,
                          progress: Callable[[str], None] | None = None,
                          rule: str = "release-exact",
                          refits: Sequence[Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Step 3: ``b`` refits on bootstrap resamples of the Thr rows (warm-started at ``start``),
    each predicting the Thr and POMDP curves on its own seed. Returns the predictions.

    ``refits``: the parameters of earlier refits with the same arguments (``params`` of an
    earlier result): the fits are deterministic, so they are reused instead of redone (the
    resamples are drawn all the same, to keep the seeds)."""
    inner = [r for r in thr_rows if 0.0 < float(r["threshold"]) < 1.0]
    rng = np.random.default_rng([seed, 77])
    preds: dict[str, list[list[dict[str, Any]]]] = {"thr": [], "pomdp": []}
    params = []
    for i in range(b):
        rows = [inner[j] for j in rng.integers(0, len(inner), len(inner))]
        if refits is not None and i < len(refits):
            p = dict(refits[i])
            sim = base.with_shape(**shape_kwargs(p))
        else:
            sim, rec = fit_thr(base, rows, start=start, sweeps=sweeps, n=fit_n,
                               seed=10_000 + i, grid=grid)
            p = rec["params"]
        params.append(p)
        sc = sim.scenario(n, 20_000 + i)
        preds["thr"].append(thr_curve(sc, [r["threshold"] for r in inner]))
        preds["pomdp"].append(pomdp_curve(sc, {float(r["cost_per_token"]):
                                               policies[float(r["cost_per_token"])]
                                               for r in pomdp_rows}, rule=rule))
        if progress is not None:
            progress(f"bootstrap {i + 1}/{b}: {p}")
    return {"params": params, **preds}


def intervals(preds: Sequence[Sequence[Mapping[str, Any]]], meas_rows: Sequence[Mapping[str, Any]],
              key: str, level: float = 0.9) -> list[dict[str, Any]]:
    """Per-point percentile intervals of the bootstrap predictions and coverage of the measured
    value (interval widened by the measurement's sampling SE)."""
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = []
    for j, m in enumerate(meas_rows):
        row: dict[str, Any] = {"param": float(m[key])}
        for k in ("accuracy", "mean_strong_tokens"):
            v = np.array([p[j][k] for p in preds])
            lo, hi = np.quantile(v, [lo_q, hi_q])
            mv = float(m[MEAS_KEYS[k]])
            if k == "accuracy":
                mse = float(np.sqrt(mv * (1 - mv) / MEASURED_N))
            else:  # the release rows hold no per-problem spread: use the simulated SD of C̄
                sd = float(np.median([p[j]["mean_strong_tokens_se"] * np.sqrt(p[j]["n"])
                                      for p in preds]))
                mse = sd / float(np.sqrt(MEASURED_N))
            row.update({f"{k}_lo": float(lo), f"{k}_hi": float(hi), f"{k}_meas": mv,
                        f"{k}_meas_se": mse,
                        f"{k}_covered": bool(lo - 1.645 * mse <= mv <= hi + 1.645 * mse)})
        out.append(row)
    return out


__all__ = ["MEASURED_N", "RULES", "bootstrap_predictions", "compare", "intervals", "pomdp_curve",
           "pomdp_policies", "score", "split_thr", "thr_split_check", "thr_to_pomdp"]
