"""TabularPOMDP → pomdp-py agent, for cross-checks against an independent implementation.

Used by the tests only: our Bayes filter against ``pomdp_py.update_histogram_belief`` and our
finite-horizon values against pomdp-py's exhaustive belief-tree value function. pomdp-py is
imported lazily (it is a dev extra).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp.errors import BackendError
from trimpomdp.pomdp.tabular import TabularPOMDP


def is_pomdp_py_available() -> bool:
    """True when the optional ``pomdp_py`` package can be imported."""
    try:
        import pomdp_py  # noqa: F401
    except ImportError:
        return False
    return True


def _pp() -> Any:
    try:
        import pomdp_py
    except ImportError as exc:
        raise BackendError("pomdp-py is not installed; install the dev extras "
                           "(pip install 'trimpomdp[dev]') to cross-check with it") from exc
    return pomdp_py


@dataclass(frozen=True, kw_only=True, eq=False)
class PomdpPyModel:
    """A TabularPOMDP expressed with pomdp-py objects (states, actions, observations, models)."""

    pomdp: TabularPOMDP
    agent: Any
    states: list
    actions: list
    observations: list
    T: Any
    O: Any
    R: Any

    def histogram(self, b: np.ndarray) -> Any:
        """Our belief vector as a ``pomdp_py.Histogram`` over every state."""
        return _pp().Histogram({s: float(p) for s, p in zip(self.states, b)})

    def to_array(self, hist: Any) -> np.ndarray:
        """A pomdp-py histogram back to our belief vector."""
        return np.array([float(hist[s]) for s in self.states])

    def update(self, b: np.ndarray, a: int, o: int) -> np.ndarray:
        """pomdp-py's histogram belief update of ``b`` after (a, o)."""
        pp = _pp()
        h = pp.update_histogram_belief(self.histogram(b), self.actions[a], self.observations[o],
                                       self.O, self.T)
        return self.to_array(h)

    def value(self, b: np.ndarray, horizon: int) -> float:
        """pomdp-py's exhaustive belief-tree value of ``b`` over ``horizon`` steps."""
        from pomdp_py.algorithms.value_function import value

        return float(value(self.histogram(b), self.states, self.actions, self.observations,
                           self.T, self.O, self.R, self.pomdp.discount, horizon=horizon))


def to_pomdp_py(pomdp: TabularPOMDP) -> PomdpPyModel:
    """Build pomdp-py tabular models and an agent (uniform policy model, belief b0).

    Dense tables: meant for small models.
    """
    pp = _pp()
    m = pomdp.absorbing()
    S = [pp.SimpleState(n) for n in m.state_names]
    A = [pp.SimpleAction(n) for n in m.action_names]
    Z = [pp.SimpleObservation(n) for n in m.observation_names]
    Td = m.dense_T()
    T = pp.TabularTransitionModel({(S[s], A[a], S[s2]): float(Td[a, s, s2])
                                   for a in range(len(A)) for s in range(len(S))
                                   for s2 in range(len(S))})
    O = pp.TabularObservationModel({(S[s2], A[a], Z[o]): float(m.O[a, s2, o])
                                    for a in range(len(A)) for s2 in range(len(S))
                                    for o in range(len(Z))})
    R = pp.TabularRewardModel({(S[s], A[a]): float(m.R[a, s])
                               for a in range(len(A)) for s in range(len(S))})
    agent = pp.Agent(pp.Histogram({s: float(p) for s, p in zip(S, m.b0)}),
                     pp.UniformPolicyModel(A), T, O, R)
    return PomdpPyModel(pomdp=m, agent=agent, states=S, actions=A, observations=Z, T=T, O=O,
                        R=R)
