"""Budgets → λ: the cost per strong token that meets a strong-token share, found by simulation."""
from __future__ import annotations

from typing import Any

import numpy as np

from trimpomdp._validate import unit_float
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing.pomdp import pomdp_factory
from trimpomdp.sim.calibrated import CalibratedSimulator, load_simulator
from trimpomdp.sim.engine import simulate
from trimpomdp.sim.naive import NaiveSimulator
from trimpomdp.sim.scenario import Scenario
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


def strong_share(model: TrimModel, lam: float, sc: Scenario, *, belief: str = "filter",
                 strong_only_tokens: float | None = None, solver: Any = None) -> dict[str, Any]:
    """Solve the POMDP at ``lam`` and simulate it on ``sc``: summary with ``strong_share``."""
    policy = (solver or FiniteHorizonSolver()).solve(TrimPOMDP(model=model, lam=lam))
    if strong_only_tokens is None:
        strong_only_tokens = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None],
                                                    sc.n_s, 0).sum(axis=1)))
    res = simulate(pomdp_factory(policy, belief=belief, record=False), sc)
    return res.summary(strong_only_tokens)


def lambda_for_budget(model: TrimModel, budget_share: float, *,
                      simulator: CalibratedSimulator | NaiveSimulator | None = None,
                      belief: str = "filter", n: int = 2000, seed: int = 0,
                      lam_max: float = 5.0, tol: float = 1e-3, max_iter: int = 30) -> float:
    """Smallest λ whose simulated strong-token share (C̄ / C̄ strong-only) is ≤ ``budget_share``.

    Bisection over λ with the exact solver on one simulated scenario (``n`` problems, ``seed``);
    the share falls as λ grows. Returns 0.0 if λ = 0 already meets the budget; raises InputError
    if even ``lam_max`` overspends. The result is within ``tol`` of the crossing point.

    >>> from trimpomdp import load_model
    >>> lam = lambda_for_budget(load_model(), 0.2, n=200, tol=0.05)  # doctest: +SKIP
    """
    b = unit_float(budget_share, "budget_share")
    sim = simulator if simulator is not None else load_simulator()
    sc = sim.scenario(n, seed)
    so = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None], sc.n_s, 0)
                       .sum(axis=1)))

    def share(lam: float) -> float:
        return float(strong_share(model, lam, sc, belief=belief, strong_only_tokens=so)
                     ["strong_share"])

    if share(0.0) <= b:
        return 0.0
    hi = float(lam_max)
    if share(hi) > b:
        raise InputError(f"no λ <= {lam_max:g} keeps the strong-token share <= {b:g}; raise "
                         "lam_max.", field="budget_share")
    lo = 0.0
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        if share(mid) <= b:
            hi = mid
        else:
            lo = mid
    return hi


__all__ = ["lambda_for_budget", "strong_share"]
