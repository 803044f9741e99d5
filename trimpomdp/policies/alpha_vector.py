"""Alpha-vector policies for generic discrete POMDPs, and the exact Bayes-filter belief update.

What every point-based solver returns: ``action(b)`` / ``value(b)`` read the best vector at b;
``update(b, a, o)`` is the discrete Bayes filter (zero evidence raises, never a zero belief).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp._io import check_envelope, envelope, read_json, write_json
from trimpomdp._validate import check_int_array
from trimpomdp.errors import InputError, SolverError
from trimpomdp.pomdp.tabular import TabularPOMDP

KIND = "alpha_vector_policy"


def update_belief(pomdp: TabularPOMDP, b: np.ndarray, a: int, o: int) -> np.ndarray:
    """Posterior b'(s') ∝ O[a, s', o] Σ_s b(s) T[a, s, s'].

    Raises SolverError when the observation has probability 0 under (b, a).
    """
    b = np.asarray(b, dtype=float)
    if b.shape != (pomdp.n_states,):
        raise InputError(f"the belief must have shape ({pomdp.n_states},). Got {b.shape} "
                         "instead.", field="belief")
    if not (0 <= a < pomdp.n_actions) or not (0 <= o < pomdp.n_observations):
        raise InputError(f"action must be in 0..{pomdp.n_actions - 1} and observation in "
                         f"0..{pomdp.n_observations - 1}. Got a={a}, o={o} instead.")
    T = pomdp.T[a]
    pred = T.T @ b
    pred = np.asarray(pred).ravel()
    post = pred * pomdp.O[a, :, o]
    z = float(post.sum())
    if not z > 0:
        support = np.flatnonzero(b > 0)[:10].tolist()
        raise SolverError(f"zero evidence: observation {o} ({pomdp.observation_names[o]!r}) has "
                          f"probability 0 after action {a} ({pomdp.action_names[a]!r}) from the "
                          f"belief with support {support}")
    return post / z


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AlphaVectorPolicy:
    """A policy given by alpha vectors ``alphas[k]`` (k, S) with actions ``actions[k]``.

    ``pomdp`` is optional and only needed for :meth:`update` (it is not saved).
    """

    alphas: np.ndarray
    actions: np.ndarray
    pomdp: TabularPOMDP | None = None
    action_names: tuple[str, ...] = ()
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        al = np.asarray(self.alphas, dtype=float)
        ac = np.asarray(self.actions)
        if al.ndim != 2 or al.shape[0] == 0:
            raise InputError(f"alphas must be a non-empty 2-D array (k, S). Got shape "
                             f"{al.shape} instead.", field="alphas")
        if ac.shape != (al.shape[0],) or not np.issubdtype(ac.dtype, np.integer):
            raise InputError(f"actions must be {al.shape[0]} integers, one per alpha vector. "
                             f"Got {ac.dtype} array of shape {ac.shape} instead.",
                             field="actions")
        if not np.all(np.isfinite(al)):
            raise InputError("alphas must be finite.", field="alphas")
        if self.pomdp is not None:
            if al.shape[1] != self.pomdp.n_states:
                raise InputError(f"alphas must have {self.pomdp.n_states} columns (one per "
                                 f"state). Got {al.shape[1]} instead.", field="alphas")
            if ac.min() < 0 or ac.max() >= self.pomdp.n_actions:
                raise InputError(f"actions must be in 0..{self.pomdp.n_actions - 1}.",
                                 field="actions")
        object.__setattr__(self, "alphas", al)
        object.__setattr__(self, "actions", ac.astype(np.int64))
        if not self.action_names and self.pomdp is not None:
            object.__setattr__(self, "action_names", self.pomdp.action_names)

    @property
    def n_states(self) -> int:
        return self.alphas.shape[1]

    def __len__(self) -> int:
        return self.alphas.shape[0]

    def _check(self, b: Any) -> np.ndarray:
        b = np.asarray(b, dtype=float)
        if b.shape[-1] != self.n_states:
            raise InputError(f"the belief must have {self.n_states} entries. Got shape {b.shape} "
                             "instead.", field="belief")
        return b

    def value(self, b: Any) -> float | np.ndarray:
        """max_k alphas[k]·b (a float, or one value per row of a 2-D ``b``)."""
        v = self._check(b) @ self.alphas.T
        return float(v.max()) if v.ndim == 1 else v.max(axis=-1)

    def action(self, b: Any) -> int | np.ndarray:
        """Action of the best alpha vector at ``b`` (one per row of a 2-D ``b``)."""
        v = self._check(b) @ self.alphas.T
        k = v.argmax(axis=-1)
        return int(self.actions[k]) if v.ndim == 1 else self.actions[k]

    def action_values(self, b: Any, n_actions: int | None = None) -> np.ndarray:
        """Best alpha value per action at ``b`` (−inf for actions without a vector)."""
        n = n_actions or (self.pomdp.n_actions if self.pomdp is not None
                          else int(self.actions.max()) + 1)
        v = self._check(b) @ self.alphas.T
        out = np.full(n, -np.inf)
        np.maximum.at(out, self.actions, v)
        return out

    def initialize(self) -> np.ndarray:
        """The start belief of the attached POMDP."""
        return self._model().b0.copy()

    def update(self, b: Any, a: int, o: int) -> np.ndarray:
        """Bayes-filter update of ``b`` after action ``a`` and observation ``o``."""
        return update_belief(self._model(), b, a, o)

    def _model(self) -> TabularPOMDP:
        if self.pomdp is None:
            raise SolverError("this policy has no POMDP attached; load it with "
                              "AlphaVectorPolicy.load(path, pomdp=...) to update beliefs")
        return self.pomdp

    def with_pomdp(self, pomdp: TabularPOMDP) -> AlphaVectorPolicy:
        """The same vectors bound to ``pomdp`` (for belief updates and simulation)."""
        return AlphaVectorPolicy(alphas=self.alphas, actions=self.actions, pomdp=pomdp,
                                 action_names=self.action_names, meta=self.meta)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy as versioned JSON, atomically."""
        write_json(path, envelope(KIND, {
            "n_states": self.n_states, "action_names": list(self.action_names),
            "actions": self.actions.tolist(), "alphas": self.alphas.tolist(),
            "meta": self.meta or {}}))

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             pomdp: TabularPOMDP | None = None) -> AlphaVectorPolicy:
        """Read a policy written by :meth:`save` (optionally attaching ``pomdp``)."""
        doc = check_envelope(read_json(path), KIND, path)
        for key in ("alphas", "actions", "n_states"):
            if key not in doc:
                raise InputError(f"missing field '{key}'", path=path, field=key)
        actions = check_int_array(doc["actions"], "actions", path=path, lo=0)
        try:
            alphas = np.asarray(doc["alphas"], dtype=float)
        except (TypeError, ValueError):
            raise InputError("alphas must be a list of lists of numbers and actions a list of "
                             "integers.", path=path, field="alphas") from None
        if alphas.ndim != 2 or alphas.shape[1] != doc["n_states"]:
            raise InputError(f"alphas must be a (k, {doc['n_states']}) matrix. Got shape "
                             f"{alphas.shape} instead.", path=path, field="alphas")
        if pomdp is not None and pomdp.n_states != alphas.shape[1]:
            raise InputError(f"the policy is for {alphas.shape[1]} states but the POMDP has "
                             f"{pomdp.n_states}. Got a policy for another model?", path=path,
                             field="n_states")
        try:
            return cls(alphas=alphas, actions=actions, pomdp=pomdp,
                       action_names=tuple(doc.get("action_names") or ()),
                       meta=dict(doc.get("meta") or {}))
        except InputError as exc:
            raise InputError(exc.reason, path=path, field=exc.field) from None
