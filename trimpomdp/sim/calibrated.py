"""The calibrated simulator of step-routed generation (real score pools + release endpoints).

Two trace generators share one engine (``simulate`` for any :class:`StepRouter`, ``rollout`` for
vectorised policies such as PPO training) and one set of pre-drawn random numbers per problem
(:class:`Scenario`), so every policy run on the same scenario sees the same problems, the same
draft steps and the same strong steps (common random numbers: differences between policies are
not sampling noise).

:class:`CalibratedSimulator` — assumptions, stated plainly:

1. A problem is one of the 500 MATH-500 problems, drawn uniformly. Its difficulty comes from the
   real Best-of-32 outcomes of Qwen2.5-7B-Instruct on it (``ScorePools``, from StrictPRMBench):
   a_j = (correct + 0.5) / (32 + 1). The strong model solves it with solution accuracy
   σ(logit a_j + δ_s), the weak model with σ(logit a_j + δ_w); δ_s, δ_w are fitted so that
   strong-only and weak-only accuracy equal the release's measured MATH-500 endpoints
   (0.730 and 0.364). Per-step accuracy is that solution accuracy to the power 1 / (mean step
   count of the problem), constant over steps: errors are independent across steps.
2. A solution has L steps, L drawn from the problem's real solution lengths (capped at 30); the
   same L whoever writes the steps (a regenerated step replaces one step). It ends after step L.
3. Class dynamics are TRIM's: a step is correct with the writer's per-step accuracy only if the
   prefix is correct; an earlier error is unrecoverable. The final answer is correct iff every
   kept step is correct (no lucky answers, no errors that do not matter).
4. PRM scores are drawn, per problem, from that problem's real Qwen2.5-Math-PRM-7B step scores:
   a correct step on a correct prefix from the steps of its correct solutions; a first wrong step
   from the first step scoring < ``error_threshold`` (else the lowest) of its wrong solutions;
   a step after an error from the later steps of its wrong solutions. Problems without such
   solutions fall back to the pool of all problems. The PRM is assumed to score the weak model's
   steps as it scores the strong model's (the dumps hold 7B solutions only).
   The weak model's steps are not scored like the 7B's: with 7B pools the simulated TRIM-Thr
   regenerates far too rarely (0.34 vs 0.98 strong calls per problem at k = 0.05). So weak-draft
   scores get a logit shift per class, logit s' = logit s − d_c (d_ok, d_err, d_post), fitted by
   ``fit_score_shift`` on the measured TRIM-Thr curve (on its own seed): either to the
   strong-token fraction only (accuracy then a pure prediction) or jointly to fraction and
   accuracy; the bundled fit and its objective are in ``data/sim/calibration_math500.json``.
   Strong-step scores are not shifted.
5. Step token counts are drawn from the problem's real step lengths, scaled so that weak-only and
   strong-only tokens per problem equal the release's measured 400.9 and 494.8.
6. Cost = strong tokens decoded (prefill free); a regenerated draft's tokens are counted as
   discarded weak tokens, as the release logs them.

Fitted: the two endpoints (k = 0 and k = 1 of TRIM-Thr) and three score shifts; checked against
the measured TRIM-Thr curve on an independent seed in ``benchmarks/calibration.py``.

:class:`NaiveSimulator` is the POMDP-as-simulator (one p_w, p_s for all problems, lengths from the
hazard, scores from the binned class densities, flat token counts), kept as the reference that
DESIGN.md §2 warns about.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from trimpomdp._io import check_envelope, read_json
from trimpomdp._validate import nonneg_float, unit_float
from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.pomdp.dynamics import DEFAULT_MAX_STEPS
from trimpomdp.resources import resource_path
from trimpomdp.sim.engine import rollout, threshold_act
from trimpomdp.sim.pools import ScorePools
from trimpomdp.sim.scenario import Scenario, check_n_seed

CALIBRATION_FILE = "sim/calibration_math500.json"
RELEASE_ENDPOINTS = {"weak_accuracy": 0.364, "strong_accuracy": 0.73, "weak_tokens": 400.946,
                     "strong_tokens": 494.84}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


class CalibratedSimulator(BaseEstimator):
    """Problem-level simulator fitted to real PRM score pools and the release's endpoints.

    Parameters
    ----------
    score_shift : (d_ok, d_err, d_post)
        Logit shifts of the weak drafts' scores per class (see the module docstring);
        :meth:`fit_score_shift` fits them, :func:`load_simulator` loads the bundled fit.
    weak_accuracy, strong_accuracy : float
        Weak-only / strong-only accuracy to match (defaults: the release's MATH-500 values).
    weak_tokens, strong_tokens : float
        Weak-only / strong-only tokens per problem to match.
    max_steps : int
        Horizon: solutions are cut at this many steps (the routed model's ``max_steps``).
    """

    def __init__(self, weak_accuracy: float = RELEASE_ENDPOINTS["weak_accuracy"],
                 strong_accuracy: float = RELEASE_ENDPOINTS["strong_accuracy"],
                 weak_tokens: float = RELEASE_ENDPOINTS["weak_tokens"],
                 strong_tokens: float = RELEASE_ENDPOINTS["strong_tokens"],
                 score_shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.score_shift = score_shift
        self.max_steps = max_steps
        self.weak_accuracy = weak_accuracy
        self.strong_accuracy = strong_accuracy
        self.weak_tokens = weak_tokens
        self.strong_tokens = strong_tokens

    def _solution_acc(self, delta: float) -> np.ndarray:
        return _sigmoid(self._base_logit + delta)

    def _expected_acc(self, delta: float) -> float:
        p = self._solution_acc(delta) ** (1.0 / self._mean_len)
        pools, tot = self.pools_, 0.0
        for j in range(pools.n_problems):
            o, c = pools.offsets["lengths"][j], pools.counts["lengths"][j]
            tot += float(np.mean(p[j] ** pools.values["lengths"][o:o + c]))
        return tot / pools.n_problems

    def _fit_delta(self, target: float) -> float:
        lo, hi = -15.0, 15.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self._expected_acc(mid) < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def fit(self, pools: ScorePools | None = None) -> CalibratedSimulator:
        """Fit δ_w, δ_s (accuracy endpoints) and token scales; ``None`` uses the bundled pools."""

        for name in ("weak_accuracy", "strong_accuracy"):
            v = unit_float(getattr(self, name), name)
            if not 0.0 < v < 1.0:
                raise InputError(f"The '{name}' parameter must be in (0, 1). Got {v!r} instead.",
                                 field=name)
        nonneg_float(self.weak_tokens, "weak_tokens", strict=True)
        nonneg_float(self.strong_tokens, "strong_tokens", strict=True)
        self.pools_ = ScorePools.load() if pools is None else pools
        P = self.pools_
        a = (P.n_correct + 0.5) / (P.n_total + 1.0)
        self._base_logit = _logit(a)
        lens = P.values["lengths"]
        self._mean_len = np.array([lens[o:o + c].mean() for o, c in
                                   zip(P.offsets["lengths"], P.counts["lengths"])])
        self.delta_w_ = self._fit_delta(float(self.weak_accuracy))
        self.delta_s_ = self._fit_delta(float(self.strong_accuracy))
        tok = P.values["step_tokens"]
        mean_tok = np.array([tok[o:o + c].mean() for o, c in
                             zip(P.offsets["step_tokens"], P.counts["step_tokens"])])
        per_problem = float(np.mean(self._mean_len * mean_tok))
        self.scale_w_ = float(self.weak_tokens) / per_problem
        self.scale_s_ = float(self.strong_tokens) / per_problem
        self.p_weak_ = self._solution_acc(self.delta_w_) ** (1.0 / self._mean_len)
        self.p_strong_ = self._solution_acc(self.delta_s_) ** (1.0 / self._mean_len)
        sh = np.asarray(self.score_shift, dtype=float)
        if sh.shape != (3,) or not np.all(np.isfinite(sh)):
            raise InputError(f"The 'score_shift' parameter must be 3 finite numbers (d_ok, d_err, "
                             f"d_post). Got {self.score_shift!r} instead.", field="score_shift")
        self.score_shift_ = tuple(float(x) for x in sh)
        return self

    def fit_score_shift(self, measured: Sequence[Mapping[str, Any]], *, objective: str = "joint",
                        n: int = 4000, seed: int = 12345,
                        d_ok: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
                        d_err: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
                        d_post: Sequence[float] = (2.0, 3.0, 4.0, 5.0)) -> CalibratedSimulator:
        """Grid-fit the shifts to measured TRIM-Thr rows (0 < k < 1) on an own seed.

        ``objective="cost"`` fits (d_ok, d_post) with d_err = 0 to ``target_token_frac`` only, so
        accuracy stays a pure prediction; ``"joint"`` fits all three to mean |Δfrac| / 0.05 +
        mean |Δaccuracy| / 0.03 (the calibration goals). Sets ``score_shift_`` and ``shift_fit_``.
        """
        if objective not in ("cost", "joint"):
            raise InputError(f"objective must be 'cost' or 'joint'. Got {objective!r} instead.",
                             field="objective")
        rows = [r for r in measured if 0.0 < float(r["threshold"]) < 1.0]
        if not rows:
            raise InputError("measured must hold TRIM-Thr rows with 0 < threshold < 1.",
                             field="threshold")
        grid = []
        for a in d_ok:
            for b in (d_err if objective == "joint" else (0.0,)):
                for c in d_post:
                    self.score_shift_ = (float(a), float(b), float(c))
                    sc = self.scenario(n, seed)
                    ef, ea = [], []
                    for r in rows:
                        res = rollout(sc, threshold_act(float(r["threshold"]))).summary()
                        ef.append(abs(res["target_token_frac"] - float(r["target_token_frac"])))
                        ea.append(abs(res["accuracy"] - float(r["accuracy"])))
                    loss = float(np.mean(ef)) / 0.05 + (float(np.mean(ea)) / 0.03
                                                        if objective == "joint" else 0.0)
                    grid.append((loss, float(a), float(b), float(c), float(np.mean(ef)),
                                 float(np.mean(ea))))
        best = min(grid)
        self.score_shift_ = best[1:4]
        self.shift_fit_ = {"objective": objective, "loss": best[0], "mae_token_frac": best[4],
                           "mae_accuracy": best[5], "n": n, "seed": seed,
                           "grid": [list(g) for g in grid]}
        return self

    def scenario(self, n: int, seed: int = 0) -> Scenario:
        """Draw ``n`` problems with seed ``seed`` (same seed → same problems and draws)."""
        if not hasattr(self, "pools_"):
            raise NotFittedError("This CalibratedSimulator instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")
        n, seed = check_n_seed(n, seed)
        rng = np.random.default_rng([seed, 20260123])
        P = self.pools_
        prob = rng.integers(0, P.n_problems, n)
        L = P.draw("lengths", prob, rng.random((n, 1)))[:, 0].clip(1, self.max_steps)
        shape = (n, int(self.max_steps))

        def tok(scale: float) -> np.ndarray:
            raw = P.draw("step_tokens", prob, rng.random(shape))
            return np.maximum(1, np.rint(raw * scale)).astype(np.int64)

        arrays = {"u_w": rng.random(shape), "u_s": rng.random(shape),
                  "n_w": tok(self.scale_w_), "n_s": tok(self.scale_s_)}
        for pre in ("sc", "ss"):
            for pool, d in zip(("ok", "err", "post"), self.score_shift_):
                x = P.draw(pool, prob, rng.random(shape))
                if pre == "sc" and d != 0.0:
                    x = np.clip(x, 1e-4, 1.0 - 1e-4)
                    x = _sigmoid(_logit(x) - d)
                arrays[f"{pre}_{pool}"] = x
        return Scenario(L=L.astype(np.int64), p_w=self.p_weak_[prob], p_s=self.p_strong_[prob],
                        problem=prob, seed=seed, source="calibrated", **arrays)


def load_simulator(pools: str | os.PathLike[str] | None = None, **params: Any
                   ) -> CalibratedSimulator:
    """The calibrated simulator on the bundled (or given) pools, with the bundled score shifts.

    The shifts come from ``data/sim/calibration_math500.json`` (written by
    ``benchmarks/calibration.py --fit``) unless ``score_shift`` is passed.
    """
    if "score_shift" not in params:
        try:
            doc = check_envelope(read_json(resource_path("data", CALIBRATION_FILE)),
                                 "sim_calibration", CALIBRATION_FILE)
            params["score_shift"] = tuple(doc["score_shift"])
        except InputError:
            warnings.warn(f"{CALIBRATION_FILE} not found: the simulator runs without score "
                          "shifts (uncalibrated cost curve).", stacklevel=2)
    return CalibratedSimulator(**params).fit(None if pools is None else ScorePools.load(pools))


__all__ = ["CALIBRATION_FILE", "RELEASE_ENDPOINTS", "CalibratedSimulator", "load_simulator"]
