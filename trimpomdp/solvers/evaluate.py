"""Simulation-based evaluation of a policy on a discrete POMDP: mean discounted return ± 95 %.

Runs are simulated together (vectorised Bayes filter and sampling) with a fixed seed, so a
policy's value can be checked against the bounds a solver reports.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import InputError, SolverError
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers.bounds import single_threaded_blas


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationResult:
    """Mean discounted return over ``runs`` simulations with its 95 % confidence interval.

    ``truncation`` bounds the value the horizon cut off: γ^H · max|R| / (1 − γ).
    """

    mean: float
    ci_low: float
    ci_high: float
    std: float
    runs: int
    horizon: int
    seed: int
    seconds: float
    truncation: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "std": self.std, "runs": self.runs, "horizon": self.horizon, "seed": self.seed,
                "seconds": self.seconds, "truncation": self.truncation}


def default_horizon(pomdp: TabularPOMDP, tol: float = 1e-3) -> int:
    """Steps after which γ^H · max|R| / (1 − γ) < ``tol`` (at most 10,000)."""
    g = pomdp.discount
    rmax = float(np.abs(pomdp.R).max())
    if g >= 1.0 or rmax == 0.0:
        return 10_000 if g >= 1.0 else 1
    h = math.log(tol * (1 - g) / rmax) / math.log(g)
    return int(min(10_000, max(1, math.ceil(h))))


def _sample_rows(rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    c = np.cumsum(rows, axis=1)
    c /= c[:, -1:]
    return np.minimum((c < u[:, None]).sum(axis=1), rows.shape[1] - 1)


def _actions(policy: Any, B: np.ndarray) -> np.ndarray:
    try:
        a = np.asarray(policy.action(B))
        if a.shape == (B.shape[0],):
            return a.astype(np.int64)
    except (TypeError, ValueError, InputError):
        pass
    return np.array([int(policy.action(b)) for b in B], dtype=np.int64)


def evaluate_policy(pomdp: TabularPOMDP, policy: Any, *, runs: int = 1000,
                    horizon: int | None = None, seed: int = 0,
                    chunk: int | None = None) -> EvaluationResult:
    """Simulate ``policy`` (anything with ``action(belief)``) from b0; return the mean return.

    Each run draws s0 ~ b0, then for H steps: a = policy.action(b), reward R[a, s], s' ~ T,
    o ~ O, b ← Bayes update. Terminal states end a run (zero reward afterwards).
    """
    with single_threaded_blas():
        return _evaluate(pomdp, policy, runs=runs, horizon=horizon, seed=seed, chunk=chunk)


def _evaluate(pomdp: TabularPOMDP, policy: Any, *, runs: int, horizon: int | None, seed: int,
              chunk: int | None) -> EvaluationResult:
    if isinstance(runs, bool) or int(runs) < 2:
        raise InputError(f"The 'runs' parameter must be an integer >= 2. Got {runs!r} instead.",
                         field="runs")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.",
                         field="seed")
    H = default_horizon(pomdp) if horizon is None else int(horizon)
    if H < 1:
        raise InputError(f"The 'horizon' parameter must be a positive integer. Got {horizon!r} "
                         "instead.", field="horizon")
    t0 = time.process_time()
    rng = np.random.default_rng(seed)
    m = pomdp
    S = m.n_states
    n = int(runs)
    if chunk is None:
        chunk = max(1, min(n, int(2e7 // max(S, 1) // 8)))
    returns = np.empty(n)
    term = m.terminal if m.terminal is not None else np.zeros(S, bool)
    for lo in range(0, n, chunk):
        k = min(chunk, n - lo)
        B = np.tile(m.b0, (k, 1))
        s = _sample_rows(B, rng.random(k))
        G = np.zeros(k)
        disc = 1.0
        alive = ~term[s]
        for _ in range(H):
            if not alive.any():
                break
            a = _actions(policy, B)
            G += np.where(alive, disc * m.R[a, s], 0.0)
            disc *= m.discount
            for act in np.unique(a[alive]):
                idx = np.flatnonzero((a == act) & alive)
                T = m.T[act]
                rows = T[s[idx]].toarray() if sp.issparse(T) else T[s[idx]]
                s2 = _sample_rows(rows, rng.random(idx.size))
                o = _sample_rows(m.O[act][s2], rng.random(idx.size))
                pred = (T.T @ B[idx].T).T if not sp.issparse(T) else np.asarray((T.T @ B[idx].T).T)
                post = pred * m.O[act][:, o].T
                z = post.sum(axis=1)
                if np.any(z <= 0):
                    raise SolverError("zero evidence while simulating: an observation drawn "
                                      "from the model has probability 0 under the belief")
                B[idx] = post / z[:, None]
                s[idx] = s2
            alive &= ~term[s]
        returns[lo:lo + k] = G
    mean = float(returns.mean())
    std = float(returns.std(ddof=1))
    half = 1.96 * std / math.sqrt(n)
    g = m.discount
    trunc = float(g ** H * np.abs(m.R).max() / (1 - g)) if g < 1 else math.inf
    return EvaluationResult(mean=mean, ci_low=mean - half, ci_high=mean + half, std=std, runs=n,
                            horizon=H, seed=seed, seconds=time.process_time() - t0,
                            truncation=trunc)
