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

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel
    from trimpomdp.observation.base import BaseObservationModel

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


class BinnedDensity:
    """P(bin | class) lookup on a square grid (the release's solver form); constant per bin."""

    def __init__(self, probs: Any, bin_size: float = 0.05) -> None:
        from trimpomdp.observation.base import grid_size

        p = np.asarray(probs, dtype=float)
        self.k = grid_size(bin_size)
        if p.shape != (3, self.k * self.k):
            raise InputError(f"probs must have shape (3, {self.k * self.k}). Got {p.shape} "
                             "instead.", field="probs")
        self.bin_size = float(bin_size)
        self._table = [tuple(float(x) for x in col) for col in p.T]

    def _idx(self, x: float) -> int:
        i = int(x / self.bin_size + 1e-12)
        return self.k - 1 if i >= self.k else i

    def __call__(self, min_prev: float, current: float) -> Triple:
        return self._table[self._idx(min_prev) * self.k + self._idx(current)]


class InterpolatedDensity(BinnedDensity):
    """Continuous density: bilinear interpolation of the binned density between bin centres.

    A fast continuous stand-in for the release's KDE when only the binned model is at hand.
    """

    def _axis(self, x: float) -> tuple[int, int, float]:
        u = x / self.bin_size - 0.5
        if u <= 0.0:
            return 0, 0, 0.0
        if u >= self.k - 1:
            return self.k - 1, self.k - 1, 0.0
        i = int(u)
        return i, i + 1, u - i

    def __call__(self, min_prev: float, current: float) -> Triple:
        i0, i1, fx = self._axis(min_prev)
        j0, j1, fy = self._axis(current)
        k, t = self.k, self._table
        a, b, c, d = t[i0 * k + j0], t[i0 * k + j1], t[i1 * k + j0], t[i1 * k + j1]
        w00, w01, w10, w11 = (1 - fx) * (1 - fy), (1 - fx) * fy, fx * (1 - fy), fx * fy
        return (w00 * a[0] + w01 * b[0] + w10 * c[0] + w11 * d[0],
                w00 * a[1] + w01 * b[1] + w10 * c[1] + w11 * d[1],
                w00 * a[2] + w01 * b[2] + w10 * c[2] + w11 * d[2])


class EstimatorDensity:
    """Any fitted observation model (e.g. the reflected KDE) as a density: exact but slower."""

    def __init__(self, model: BaseObservationModel) -> None:
        model._check_fitted()
        self.model = model

    def __call__(self, min_prev: float, current: float) -> Triple:
        d = self.model.pdf(np.array([[min_prev, current]]))[0]
        return (float(d[0]), float(d[1]), float(d[2]))


def make_density(model: TrimModel, density: Any = "binned") -> ObservationDensity:
    """``"binned"`` (lookup), ``"continuous"`` (bilinear), a fitted observation model, or a callable."""
    if isinstance(density, str):
        if density == "binned":
            return BinnedDensity(model.obs_probs, model.bin_size)
        if density in ("continuous", "interpolated"):
            return InterpolatedDensity(model.obs_probs, model.bin_size)
        raise InputError(f"The 'density' parameter must be 'binned', 'continuous', a fitted "
                         f"observation model or a callable. Got {density!r} instead.",
                         field="density")
    from trimpomdp.observation.base import BaseObservationModel

    if isinstance(density, BaseObservationModel):
        return EstimatorDensity(density)
    if callable(density):
        return density
    raise InputError(f"The 'density' parameter must be 'binned', 'continuous', a fitted "
                     f"observation model or a callable. Got {type(density).__name__} instead.",
                     field="density")


def trim_transitions(p_weak: float, p_strong: float) -> tuple[np.ndarray, np.ndarray]:
    """The TRIM transition matrices T[c, c'] for (continue, regenerate) — DESIGN.md §2."""
    pw, ps = float(p_weak), float(p_strong)
    cont = np.array([[pw, 0.0, 1.0 - pw], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    row = [pw * ps, 1.0 - ps, ps * (1.0 - pw)]
    return cont, np.array([row, [0.0, 1.0, 0.0], row])


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

    def consult(self, belief: Belief) -> bool:
        """True if the policy should be consulted (S2 close enough to the most likely class)."""
        if self.gate is None:
            return True
        p = belief.probs
        return max(p) - p[2] <= self.gate + 1e-12


__all__ = ["BayesFilterUpdater", "Belief", "BinnedDensity", "EstimatorDensity",
           "InterpolatedDensity", "ObservationDensity", "SingleObservationUpdater",
           "make_density", "trim_transitions"]
