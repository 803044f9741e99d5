"""Beliefs over the hidden correctness class (S0, S1, S2) and the two runtime rules that update them.

:class:`BayesFilterUpdater` carries the belief across steps (predict with the TRIM transition of the
action taken, correct with the observation density). :class:`SingleObservationUpdater` is the
release's rule: the posterior of the current observation alone under a uniform prior, plus its
closeness gate. Both are plain Python on three floats, so an update costs a few microseconds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.observation.grid import (  # noqa: F401 - densities re-exported for callers
    BinnedDensity,
    InterpolatedDensity,
    density_batch,
)
from trimpomdp.pomdp.dynamics import trim_transitions

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel

Triple = tuple[float, float, float]
_UNIFORM: Triple = (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Belief:
    """Probabilities of S0, S1, S2; ``fallback`` marks a zero-evidence update that kept the prior."""

    probs: Triple
    fallback: bool = False

    def __post_init__(self) -> None:
        p = self.probs
        if len(p) != 3:
            raise InputError(f"probs must hold 3 probabilities (S0, S1, S2). Got {len(p)} instead.",
                             field="probs")
        s = p[0] + p[1] + p[2]
        if not (p[0] >= 0 and p[1] >= 0 and p[2] >= 0 and abs(s - 1.0) <= 1e-6):  # NaN fails
            raise InputError(f"probs must be non-negative and sum to 1. Got {tuple(p)!r} instead.",
                             field="probs")

    @classmethod
    def of(cls, probs: Any, *, fallback: bool = False) -> Belief:
        """A belief from any 3-sequence that sums to 1 (renormalised within 1e-6)."""
        try:
            a, b, c = (float(x) for x in probs)
        except (TypeError, ValueError):
            raise InputError(f"belief must be 3 numbers (S0, S1, S2). Got {probs!r} instead.",
                             field="belief") from None
        s = a + b + c
        if s > 0 and math.isfinite(s):
            a, b, c = a / s, b / s, c / s
        return cls(probs=(a, b, c), fallback=fallback)

    @classmethod
    def uniform(cls) -> Belief:
        """The uniform belief."""
        return cls(probs=_UNIFORM)

    def as_array(self) -> np.ndarray:
        """The probabilities as a float array of shape (3,)."""
        return np.array(self.probs)

    @property
    def most_likely(self) -> int:
        """Index of the most likely class (ties: lowest index)."""
        p = self.probs
        return 0 if p[0] >= p[1] and p[0] >= p[2] else (1 if p[1] >= p[2] else 2)

    def to_list(self) -> list[float]:
        """JSON-ready probabilities."""
        return [float(x) for x in self.probs]


class ObservationDensity(Protocol):
    """Callable giving the (unnormalised) likelihood of o = (min_prev, current) under each class."""

    def __call__(self, min_prev: float, current: float) -> Triple: ...


class EstimatorDensity:
    """Any fitted observation model (e.g. the reflected KDE) as a density: exact but slower."""

    def __init__(self, model: Any) -> None:
        model._check_fitted()
        self.model = model

    def __call__(self, min_prev: float, current: float) -> Triple:
        d = self.model.pdf(np.array([[min_prev, current]]))[0]
        return (float(d[0]), float(d[1]), float(d[2]))


def make_density(model: TrimModel, density: Any = "binned") -> ObservationDensity:
    """``"binned"`` (lookup), ``"continuous"`` (bilinear), a fitted observation model, or a callable.

    The grid densities apply the model's score transform (if any) to the raw scores first.
    """
    if isinstance(density, str):
        g = getattr(model, "score_transform", None)
        if density == "binned":
            return BinnedDensity(model.obs_probs, model.bin_size, transform=g)
        if density in ("continuous", "interpolated"):
            return InterpolatedDensity(model.obs_probs, model.bin_size, transform=g)
        raise InputError(f"The 'density' parameter must be 'binned', 'continuous', a fitted "
                         f"observation model or a callable. Got {density!r} instead.",
                         field="density")
    if hasattr(density, "pdf") and hasattr(density, "_check_fitted"):  # a fitted estimator
        return EstimatorDensity(density)
    if callable(density):
        return density
    raise InputError(f"The 'density' parameter must be 'binned', 'continuous', a fitted "
                     f"observation model or a callable. Got {type(density).__name__} instead.",
                     field="density")


class BayesFilterUpdater:
    """Exact Bayes filter over (S0, S1, S2) across steps.

    ``update(b, a, o)``: predict with T_a, multiply by the observation likelihood, normalise.
    Zero evidence (the observation is impossible under every predicted class) keeps the
    prediction and sets ``Belief.fallback``; the result is never NaN.
    """

    def __init__(self, transitions: Sequence[Any], density: ObservationDensity,
                 prior: Any = None) -> None:
        mats = [np.asarray(t, dtype=float) for t in transitions]
        if len(mats) != 2 or any(m.shape != (3, 3) for m in mats):
            raise InputError("transitions must be two (3, 3) matrices (continue, regenerate).",
                             field="transitions")
        for m in mats:
            if np.any(m < 0) or not np.allclose(m.sum(axis=1), 1.0, atol=1e-6):
                raise InputError("every row of a transition matrix must be a probability "
                                 "distribution.", field="transitions")
        self.transitions = tuple(mats)
        self._T = tuple(tuple(tuple(float(x) for x in row) for row in m) for m in mats)
        self.density = density
        # before the first step the solution is empty (S0); the first draft is then S0 or S2
        p0 = Belief(probs=(1.0, 0.0, 0.0)).probs if prior is None else Belief.of(prior).probs
        self.prior = Belief(probs=self._predict(p0, 0))

    @classmethod
    def from_model(cls, model: TrimModel, density: Any = "binned") -> BayesFilterUpdater:
        """Filter with the model's p_weak/p_strong transitions and observation density."""
        return cls(trim_transitions(model.p_weak, model.p_strong), make_density(model, density))

    @classmethod
    def from_pomdp(cls, pomdp: Any, density: Any = "binned") -> BayesFilterUpdater:
        """Filter using ``pomdp.transition_matrix(a)`` (a :class:`TrimPOMDP`)."""
        return cls((pomdp.transition_matrix(0), pomdp.transition_matrix(1)),
                   make_density(pomdp.model, density))

    def _predict(self, p: Triple, action: int) -> Triple:
        T = self._T[action]
        return (p[0] * T[0][0] + p[1] * T[1][0] + p[2] * T[2][0],
                p[0] * T[0][1] + p[1] * T[1][1] + p[2] * T[2][1],
                p[0] * T[0][2] + p[1] * T[1][2] + p[2] * T[2][2])

    def initialize(self) -> Belief:
        """Predicted belief of the first drafted step (before its observation)."""
        return self.prior

    def predict(self, belief: Belief, action: int) -> Belief:
        """Belief of the next drafted step's class after ``action`` on the current step."""
        return Belief(probs=self._predict(belief.probs, int(action)))

    def correct(self, predicted: Belief, obs: tuple[float, float]) -> Belief:
        """Condition a predicted belief on o = (min_prev, current)."""
        p = predicted.probs
        lik = self.density(obs[0], obs[1])
        a, b, c = p[0] * lik[0], p[1] * lik[1], p[2] * lik[2]
        s = a + b + c
        if not (s > 0.0) or s == math.inf:
            return Belief(probs=p, fallback=True)
        return Belief(probs=(a / s, b / s, c / s))

    def update(self, belief: Belief | None, action: int | None, obs: tuple[float, float]
               ) -> Belief:
        """Predict with ``action`` from ``belief`` then correct with ``obs``.

        ``belief=None`` starts a problem: the prior of the first step is corrected instead.
        """
        pred = self.prior if belief is None else Belief(probs=self._predict(belief.probs,
                                                                            int(action or 0)))
        return self.correct(pred, obs)

    def update_batch(self, beliefs: np.ndarray | None, actions: Any, lik: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`update` for m problems: (posteriors (m, 3), zero-evidence mask (m,)).

        ``beliefs`` (m, 3) or None (every problem at its first step), ``actions`` (m,) taken on
        the previous step, ``lik`` (m, 3) the observation likelihoods (see
        :func:`~trimpomdp.observation.grid.density_batch`). Same numbers as the scalar update.
        """
        m = lik.shape[0]
        if beliefs is None:
            pred = np.tile(np.array(self.prior.probs), (m, 1))
        else:
            bp = np.asarray(beliefs, float)
            Tc, Tr = self.transitions
            pc = bp[:, 0:1] * Tc[0] + bp[:, 1:2] * Tc[1] + bp[:, 2:3] * Tc[2]
            pr = bp[:, 0:1] * Tr[0] + bp[:, 1:2] * Tr[1] + bp[:, 2:3] * Tr[2]
            pred = np.where((np.asarray(actions) == 1)[:, None], pr, pc)
        post = pred * lik
        tot = post[:, 0] + post[:, 1] + post[:, 2]
        bad = ~(tot > 0.0) | (tot == np.inf)
        return np.where(bad[:, None], pred, post / np.where(bad, 1.0, tot)[:, None]), bad


class SingleObservationUpdater:
    """The release's runtime belief: P(c | current observation) under a uniform prior.

    History is ignored. :meth:`consult` is the release's closeness gate: the policy is asked only
    when P(S2) is within ``gate`` of the most likely class; otherwise the step is continued.
    """

    def __init__(self, density: ObservationDensity, gate: float | None = 0.4) -> None:
        if gate is not None and not (0.0 <= float(gate) <= 1.0):
            raise InputError(f"The 'gate' parameter must be a float in [0, 1] or None. Got "
                             f"{gate!r} instead.", field="gate")
        self.density = density
        self.gate = None if gate is None else float(gate)

    @classmethod
    def from_model(cls, model: TrimModel, density: Any = "continuous",
                   gate: float | None = 0.4) -> SingleObservationUpdater:
        """The release's rule on the model's observation density (continuous at runtime)."""
        return cls(make_density(model, density), gate)

    def initialize(self) -> Belief:
        """The uniform prior."""
        return Belief(probs=_UNIFORM)

    def update(self, belief: Belief | None, action: int | None, obs: tuple[float, float]
               ) -> Belief:
        """Posterior of ``obs`` alone (``belief`` and ``action`` are ignored by design)."""
        d = self.density(obs[0], obs[1])
        s = d[0] + d[1] + d[2]
        if not (s > 0.0) or s == math.inf:
            return Belief(probs=_UNIFORM, fallback=True)
        return Belief(probs=(d[0] / s, d[1] / s, d[2] / s))

    def update_batch(self, beliefs: np.ndarray | None, actions: Any, lik: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`update`: (posteriors (m, 3), zero-evidence mask (m,)) of ``lik``."""
        tot = lik[:, 0] + lik[:, 1] + lik[:, 2]
        bad = ~(tot > 0.0) | (tot == np.inf)
        uniform = np.full(3, 1.0 / 3.0)
        return np.where(bad[:, None], uniform, lik / np.where(bad, 1.0, tot)[:, None]), bad

    def consult_batch(self, beliefs: np.ndarray) -> np.ndarray:
        """Batched :meth:`consult` for beliefs (m, 3)."""
        if self.gate is None:
            return np.ones(beliefs.shape[0], dtype=bool)
        return beliefs.max(axis=1) - beliefs[:, 2] <= self.gate + 1e-12

    def consult(self, belief: Belief) -> bool:
        """True if the policy should be consulted (S2 close enough to the most likely class)."""
        if self.gate is None:
            return True
        p = belief.probs
        return max(p) - p[2] <= self.gate + 1e-12


__all__ = ["BayesFilterUpdater", "Belief", "BinnedDensity", "EstimatorDensity",
           "InterpolatedDensity", "ObservationDensity", "SingleObservationUpdater",
           "make_density", "trim_transitions"]  # trim_transitions: re-exported from pomdp.dynamics
