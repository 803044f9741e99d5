"""Budgets → λ: the cost per strong token that meets a strong-token share, found by simulation."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp._validate import unit_float
from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation.grid import density_batch
from trimpomdp.policies.trim_policy import TrimPolicy, model_fingerprint
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing.features import book_step
from trimpomdp.routing.pomdp import pomdp_factory
from trimpomdp.sim.calibrated import CalibratedSimulator, load_simulator
from trimpomdp.sim.engine import ActFn, rollout, simulate
from trimpomdp.sim.naive import NaiveSimulator
from trimpomdp.sim.scenario import Scenario
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


def pomdp_act(policy: TrimPolicy, *, belief: str = "filter", density: str = "continuous",
              gate: float | None = 0.4) -> ActFn:
    """A solved TRIM policy as a vectorised rule for :func:`~trimpomdp.sim.engine.rollout`.

    The same beliefs and actions as the per-step router of :func:`pomdp_factory` (batched
    updater, batched densities and Q-values; tested to agree), about 50× faster: budget
    searches use it. One ActFn per rollout (it keeps the rollout's beliefs).
    """
    model = policy.model
    if belief == "filter":
        up: Any = BayesFilterUpdater.from_model(model, density)
    elif belief == "release":
        up = SingleObservationUpdater.from_model(model, density, gate)
    else:
        raise InputError(f"belief must be 'filter' or 'release'. Got {belief!r} instead.",
                         field="belief")
    state: dict[str, np.ndarray] = {}

    def act(t: int, idx: np.ndarray, score: np.ndarray, tok: np.ndarray, final: np.ndarray
            ) -> np.ndarray:
        if t == 0:
            n = int(idx.max()) + 1 if idx.size else 0
            state["b"] = np.zeros((n, 3))
            state["min"] = np.ones(n)
            state["last"] = np.zeros(n, dtype=np.int8)
        b, mn, last = state["b"], state["min"], state["last"]
        lik = density_batch(model.obs_probs, model.bin_size, mn[idx], score, density)
        new, _ = up.update_batch(None if t == 0 else b[idx], last[idx], lik)
        b[idx] = new
        ask = up.consult_batch(new) if belief == "release" else np.ones(idx.size, dtype=bool)
        a = np.zeros(idx.size, dtype=bool)
        if ask.any():
            q = policy.q_values_batch(t, tok[ask], new[ask], final[ask])
            a[ask] = q[:, 1] > q[:, 0]
        mn[idx], _ = book_step(mn[idx], mn[idx], score, a)
        last[idx] = a
        return a

    return act


def strong_share(model: TrimModel, lam: float, sc: Scenario, *, belief: str = "filter",
                 strong_only_tokens: float | None = None, solver: Any = None,
                 vectorised: bool = False) -> dict[str, Any]:
    """Solve the POMDP at ``lam`` and simulate it on ``sc``: summary with ``strong_share``.

    ``vectorised`` runs the batched rule (:func:`pomdp_act`, same decisions) instead of one
    router per problem.
    """
    policy = (solver or FiniteHorizonSolver()).solve(TrimPOMDP(model=model, lam=lam))
    if strong_only_tokens is None:
        strong_only_tokens = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None],
                                                    sc.n_s, 0).sum(axis=1)))
    if vectorised:
        res = rollout(sc, pomdp_act(policy, belief=belief), f"pomdp:{lam:g}")
    else:
        res = simulate(pomdp_factory(policy, belief=belief, record=False), sc)
    return res.summary(strong_only_tokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetResult:
    """The λ found for a strong-token share, and how (which simulator, how many evaluations)."""

    lam: float
    share: float
    target: float
    simulator: str
    evaluations: int
    seconds: float


def simulator_for(model: TrimModel) -> tuple[CalibratedSimulator | NaiveSimulator, str]:
    """The simulator a budget for ``model`` is searched on, and its name.

    The bundled model gets the calibrated MATH-500 simulator (fitted to its pair's measured
    curve); any other model — the user's own pair — gets the simulator built from that model
    itself (its step accuracies, hazard and observation densities: :class:`NaiveSimulator`).
    """
    if model_fingerprint(model) == model_fingerprint(load_model()):
        return load_simulator(), "calibrated:math500 (bundled model's pair)"
    return NaiveSimulator(model), f"model:{model.name} (the loaded model as simulator)"


def search_budget(model: TrimModel, budget_share: float, *,
                  simulator: CalibratedSimulator | NaiveSimulator | None = None,
                  belief: str = "filter", n: int = 800, seed: int = 0, lam_max: float = 5.0,
                  tol: float = 2e-3, solver_tol: float = 1e-3,
                  progress: Callable[[str], None] | None = None) -> BudgetResult:
    """Smallest λ whose simulated strong-token share (C̄ / C̄ strong-only) is ≤ ``budget_share``.

    Bisection over λ (the share falls as λ grows) on one simulated scenario (``n`` problems,
    ``seed``), solving with pruning tolerance ``solver_tol`` during the search; the result is
    within ``tol`` of the crossing point. Returns λ = 0 if it already meets the budget; raises
    InputError if even ``lam_max`` overspends. ``progress`` gets one line per evaluation.
    """
    b = unit_float(budget_share, "budget_share")
    t0 = time.perf_counter()
    if simulator is None:
        sim, name = simulator_for(model)
    else:
        sim, name = simulator, type(simulator).__name__
    sc = sim.scenario(n, seed)
    so = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None], sc.n_s, 0)
                       .sum(axis=1)))
    solver = FiniteHorizonSolver(tol=solver_tol)
    evals = 0

    def share(lam: float) -> float:
        nonlocal evals
        evals += 1
        v = float(strong_share(model, lam, sc, belief=belief, strong_only_tokens=so,
                               solver=solver, vectorised=True)["strong_share"])
        if progress is not None:
            progress(f"budget search [{name}]: λ={lam:.4g} → share {v:.3f} (target {b:g})")
        return v

    def done(lam: float, v: float) -> BudgetResult:
        return BudgetResult(lam=lam, share=v, target=b, simulator=name, evaluations=evals,
                            seconds=time.perf_counter() - t0)

    s0 = share(0.0)
    if s0 <= b:
        return done(0.0, s0)
    hi = float(lam_max)
    s_hi = share(hi)
    if s_hi > b:
        raise InputError(f"no λ <= {lam_max:g} keeps the strong-token share <= {b:g} in the "
                         f"simulator ({name}); raise lam_max.", field="budget")
    lo = 0.0
    # geometric bracketing first: the crossing is usually far below lam_max
    cand = hi / 8.0
    while cand > tol:
        v = share(cand)
        if v <= b:
            hi, s_hi = cand, v
            cand /= 8.0
        else:
            lo = cand
            break
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        v = share(mid)
        if v <= b:
            hi, s_hi = mid, v
        else:
            lo = mid
    return done(hi, s_hi)


def lambda_for_budget(model: TrimModel, budget_share: float, *,
                      simulator: CalibratedSimulator | NaiveSimulator | None = None,
                      belief: str = "filter", n: int = 800, seed: int = 0,
                      lam_max: float = 5.0, tol: float = 2e-3, max_iter: int = 30) -> float:
    """λ of :func:`search_budget` (kept for callers that need the number only).

    >>> from trimpomdp import load_model
    >>> lam = lambda_for_budget(load_model(), 0.2, n=200, tol=0.05)  # doctest: +SKIP
    """
    return search_budget(model, budget_share, simulator=simulator, belief=belief, n=n, seed=seed,
                         lam_max=lam_max, tol=tol).lam


__all__ = ["BudgetResult", "lambda_for_budget", "pomdp_act", "search_budget", "simulator_for",
           "strong_share"]
