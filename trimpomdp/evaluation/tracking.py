"""Vectorised belief tracking along real score sequences (the router's beliefs and actions, many
solutions at once), its plain-loop reference, and comparisons of two trackings."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
from trimpomdp.errors import InputError
from trimpomdp.observation.grid import density_batch as _grid_density_batch
from trimpomdp.routing.spec import pomdp_router

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel
from trimpomdp.evaluation.score_table import ScoreTable
from trimpomdp.routing.features import book_step

RULES = ("filter", "release")
MODES = ("router", "passive")


def density_batch(model: TrimModel, min_prev: np.ndarray, current: np.ndarray,
                  density: str = "continuous") -> np.ndarray:
    """Likelihoods (m, 3) of observations under each class of ``model`` (see
    :func:`trimpomdp.observation.grid.density_batch`, the one home of the densities)."""
    return _grid_density_batch(model.obs_probs, model.bin_size, min_prev, current, density)


def q_batch(policy: Any, step: int, tokens: Any, beliefs: np.ndarray, final: Any = False
            ) -> np.ndarray:
    """[Q(continue), Q(regenerate)] (m, 2) of a :class:`TrimPolicy` for many beliefs at one step.

    ``tokens`` and ``final`` are scalars or (m,) arrays; same formula as ``TrimPolicy.q_values``.
    """
    return policy.q_values_batch(step, tokens, beliefs, final)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BeliefTracks:
    """Result of :func:`track`: per-step arrays (n, T) over the tracked steps.

    ``belief`` (n, T, 3) is NaN where not tracked; ``action`` is 0/1, −1 where no action was
    taken (not tracked, beyond the horizon, or no policy); ``consulted`` is False where the
    release's gate skipped the policy; ``q`` (n, T, 2) is NaN where the policy was not asked.
    """

    belief: np.ndarray
    action: np.ndarray
    consulted: np.ndarray
    q: np.ndarray
    fallback: np.ndarray
    tracked: np.ndarray
    rule: str
    mode: str
    lam: float | None
    seconds: float = 0.0

    @property
    def n(self) -> int:
        """Number of solutions."""
        return int(self.tracked.shape[0])

    def final_belief(self) -> np.ndarray:
        """Belief (n, 3) at each solution's last tracked step."""
        return self.belief[np.arange(self.n), self.tracked - 1]

    def p_s0_final(self) -> np.ndarray:
        """P(S0) at the last tracked step: the belief that the whole solution is correct."""
        return self.final_belief()[:, 0]

    def regenerations(self) -> np.ndarray:
        """Number of steps where the policy asked for a regeneration, per solution."""
        return (self.action == 1).sum(axis=1)

    def first_regeneration(self) -> np.ndarray:
        """Step of the first regeneration request (−1 if none), per solution."""
        r = self.action == 1
        return np.where(r.any(axis=1), r.argmax(axis=1), -1)


def _check_choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise InputError(f"The '{name}' parameter must be one of {', '.join(map(repr, allowed))}."
                         f" Got {value!r} instead.", field=name)
    return value


def track(data: ScoreTable, policy: Any = None, *, model: TrimModel | None = None,
          rule: str = "filter", mode: str = "router", density: str = "continuous",
          gate: float | None = 0.4) -> BeliefTracks:
    """Belief tracking (and the policy's actions) along every solution of ``data``, vectorised.

    ``rule`` is ``"filter"`` (Bayes filter across steps) or ``"release"`` (posterior of the current
    observation under a uniform prior, with the closeness ``gate``); ``mode`` as in the module
    docstring. ``mode="router"`` needs a solved ``policy``; ``"passive"`` works with a ``model``
    alone (beliefs only).
    """
    _check_choice(rule, RULES, "rule")
    _check_choice(mode, MODES, "mode")
    if policy is None and mode == "router":
        raise InputError("mode='router' needs a solved policy (the router's actions drive the "
                         "belief). Got None instead.", field="policy")
    model = policy.model if policy is not None else model
    if model is None:
        raise InputError("give a policy or a model. Got neither.", field="model")
    t0 = time.perf_counter()
    n, T = data.scores.shape
    H = int(model.max_steps)
    steps = min(T, H) if mode == "router" else T
    tracked = np.minimum(data.lengths, steps)
    filt = BayesFilterUpdater.from_model(model, density)
    up: Any = filt if rule == "filter" else SingleObservationUpdater.from_model(model, density,
                                                                               gate)
    belief = np.full((n, T, 3), np.nan)
    action = np.full((n, T), -1, dtype=np.int8)
    consulted = np.zeros((n, T), dtype=bool)
    q = np.full((n, T, 2), np.nan)
    fallback = np.zeros((n, T), dtype=bool)
    b = np.tile(np.array(filt.prior.probs), (n, 1))
    min_prev = np.ones(n)
    last = np.zeros(n, dtype=np.int8)
    for t in range(steps):
        act = np.flatnonzero(data.lengths > t)
        s = data.scores[act, t]
        lik = density_batch(model, min_prev[act], s, density)
        new, bad = up.update_batch(None if t == 0 else b[act], last[act], lik)
        b[act] = new
        belief[act, t] = new
        fallback[act, t] = bad
        taken = np.zeros(act.size, dtype=np.int8)
        if policy is not None and t < H:
            if rule == "release":
                ask = up.consult_batch(new)
            else:
                ask = np.ones(act.size, dtype=bool)
            final = data.lengths[act] - 1 == t
            qq = np.full((act.size, 2), np.nan)
            if ask.any():
                qq[ask] = q_batch(policy, t, data.tokens[act[ask], t], new[ask], final[ask])
            decided = (ask & (qq[:, 1] > qq[:, 0])).astype(np.int8)
            action[act, t] = decided
            consulted[act, t] = ask
            q[act, t] = qq
            if mode == "router":
                taken = decided
        min_prev[act], _ = book_step(min_prev[act], min_prev[act], s, taken)
        last[act] = taken
    return BeliefTracks(belief=belief, action=action, consulted=consulted, q=q,
                        fallback=fallback, tracked=tracked, rule=rule, mode=mode,
                        lam=None if policy is None else float(policy.lam),
                        seconds=time.perf_counter() - t0)


def track_with_router(data: ScoreTable, policy: Any, *, rule: str = "filter",
                      density: str = "continuous", gate: float | None = 0.4) -> BeliefTracks:
    """The reference: a plain loop of ``StepRouter.decide`` per step (mode ``"router"``)."""
    _check_choice(rule, RULES, "rule")
    t0 = time.perf_counter()
    router = pomdp_router(policy, belief=rule, density=density, gate=gate, record=False)
    n, T = data.scores.shape
    H = int(policy.model.max_steps)
    tracked = np.minimum(data.lengths, H)
    belief = np.full((n, T, 3), np.nan)
    action = np.full((n, T), -1, dtype=np.int8)
    consulted = np.zeros((n, T), dtype=bool)
    q = np.full((n, T, 2), np.nan)
    fallback = np.zeros((n, T), dtype=bool)
    S, N, L = data.scores.tolist(), data.tokens.tolist(), data.lengths.tolist()
    for i in range(n):
        router.reset()
        Li = L[i]
        for t in range(min(Li, H)):
            d = router.decide(S[i][t], N[i][t], t, t == Li - 1)
            assert d.belief is not None  # POMDP rules always carry a belief
            belief[i, t] = d.belief.probs
            fallback[i, t] = d.belief.fallback
            action[i, t] = int(d.action)
            if d.q is not None:
                consulted[i, t] = True
                q[i, t] = d.q
    return BeliefTracks(belief=belief, action=action, consulted=consulted, q=q,
                        fallback=fallback, tracked=tracked, rule=rule, mode="router",
                        lam=float(policy.lam), seconds=time.perf_counter() - t0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Disagreement:
    """Where two trackings' actions differ (compared on steps both took an action)."""

    any_step: np.ndarray
    first_step: np.ndarray
    n_solutions: int
    n_steps: int
    n_compared_steps: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"solutions_disagreeing": self.n_solutions, "steps_disagreeing": self.n_steps,
                "steps_compared": self.n_compared_steps, "solutions": int(self.any_step.size)}


def disagreement(a: BeliefTracks, b: BeliefTracks) -> Disagreement:
    """Solutions where ``a`` and ``b`` choose different actions at one step or more."""
    if a.action.shape != b.action.shape:
        raise InputError(f"both trackings must cover the same solutions. Got {a.action.shape} "
                         f"and {b.action.shape} instead.", field="tracks")
    both = (a.action >= 0) & (b.action >= 0)
    diff = both & (a.action != b.action)
    anyd = diff.any(axis=1)
    return Disagreement(any_step=anyd, first_step=np.where(anyd, diff.argmax(axis=1), -1),
                        n_solutions=int(anyd.sum()), n_steps=int(diff.sum()),
                        n_compared_steps=int(both.sum()))


def regeneration_profile(tracks: BeliefTracks, data: ScoreTable, max_step: int = 30
                         ) -> dict[str, np.ndarray]:
    """Per step (0..max_step-1): share of live solutions, correct and incorrect separately,
    on which the policy asks to regenerate."""
    out = {}
    for name, sel in (("correct", data.correct), ("incorrect", ~data.correct)):
        a = tracks.action[sel, :max_step]
        live = (a >= 0).sum(axis=0)
        out[name] = np.where(live > 0, (a == 1).sum(axis=0) / np.maximum(live, 1), np.nan)
        out[name + "_live"] = live
    return out


__all__ = ["BeliefTracks", "Disagreement", "density_batch", "disagreement", "q_batch",
           "regeneration_profile", "track", "track_with_router"]
