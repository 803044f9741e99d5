"""A generic discrete POMDP as arrays: transitions, observations, rewards, start belief.

:class:`TabularPOMDP` is the exchange value between the Cassandra reader/writer, the TRIM exporter
and the generic solvers. Transitions may be dense ``(A, S, S)`` or one sparse matrix per action
(large models such as RockSample(7,8) do not fit densely).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import InputError

#: tolerance on row sums of T, O and on the start belief.
ROW_ATOL = 1e-6
#: slack for float round-off when a row sums to exactly 1 ± ROW_ATOL in decimal.
_SLACK = 1e-12
#: most states a model file may declare (readers refuse larger ones before allocating).
MAX_STATES = 1 << 20
#: most entries of a dense table a reader allocates (the observation table A × S × O).
MAX_DENSE_ENTRIES = 1 << 27


def check_sizes(n_states: int, n_actions: int, n_observations: int, *,
                path: str | None = None, line: int | None = None) -> None:
    """Refuse model sizes that cannot be held in memory, before anything is allocated."""
    for what, n in (("states", n_states), ("actions", n_actions),
                    ("observations", n_observations)):
        if n > MAX_STATES:
            raise InputError(f"the number of {what} must be at most {MAX_STATES}. Got {n} "
                             "instead.", path=path, line=line, field=what)
    dense = n_states * n_actions * n_observations
    if dense > MAX_DENSE_ENTRIES:
        raise InputError(f"actions × states × observations must be at most "
                         f"{MAX_DENSE_ENTRIES} (the dense observation table). Got "
                         f"{n_actions} × {n_states} × {n_observations} = {dense} instead.",
                         path=path, line=line, field="states")


def _names(value: Sequence[str] | None, n: int, prefix: str, what: str) -> tuple[str, ...]:
    if value is None or len(value) == 0:
        return tuple(f"{prefix}{i}" for i in range(n))
    names = tuple(str(v) for v in value)
    if len(names) != n:
        raise InputError(f"{what} names must have length {n}. Got {len(names)} instead.",
                         field=f"{what}_names")
    if len(set(names)) != n:
        dup = next(x for x in names if names.count(x) > 1)
        raise InputError(f"{what} names must be unique. Got {dup!r} twice instead.",
                         field=f"{what}_names")
    return names


def _check_rows(sums: np.ndarray, name: str) -> None:
    bad = np.argwhere(np.abs(sums - 1.0) > ROW_ATOL + _SLACK)
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise InputError(f"every row of {name} must sum to 1 (within {ROW_ATOL:g}). Row {idx} "
                         f"sums to {float(sums[idx]):.9g} instead.", field=name)


@dataclass(frozen=True, kw_only=True, eq=False)
class TabularPOMDP:
    """A discrete POMDP: ``T[a, s, s']``, ``O[a, s', o]``, ``R[a, s]``, discount, ``b0``.

    ``R[a, s]`` is the expected immediate reward of doing ``a`` in ``s``. ``terminal`` marks
    absorbing states whose value is 0 (solvers make them self-loops without reward).
    ``T`` is a dense array or a tuple of one ``scipy.sparse.csr_matrix`` per action.
    """

    T: Any
    O: np.ndarray
    R: np.ndarray
    discount: float
    b0: np.ndarray
    terminal: np.ndarray | None = None
    state_names: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    observation_names: tuple[str, ...] = ()
    name: str = "pomdp"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        O = np.asarray(self.O, dtype=float)
        if O.ndim != 3:
            raise InputError(f"O must be a 3-D array O[a, s', o]. Got shape {O.shape} instead.",
                             field="O")
        n_a, n_s, n_o = O.shape
        if n_a == 0 or n_s == 0 or n_o == 0:
            raise InputError(f"O must have at least one action, state and observation. Got "
                             f"shape {O.shape} instead.", field="O")
        T = self.T
        if isinstance(T, (list, tuple)) or sp.issparse(T):
            mats = [T] if sp.issparse(T) else list(T)
            if len(mats) != n_a:
                raise InputError(f"T must hold one matrix per action ({n_a}). Got {len(mats)} "
                                 "instead.", field="T")
            out = []
            for a, m in enumerate(mats):
                m = sp.csr_matrix(m, dtype=float)
                if m.shape != (n_s, n_s):
                    raise InputError(f"T[{a}] must have shape ({n_s}, {n_s}). Got {m.shape} "
                                     "instead.", field="T")
                m.sum_duplicates()
                m.eliminate_zeros()
                if not np.all(np.isfinite(m.data)) or np.any(m.data < 0):
                    raise InputError("T must have finite, non-negative entries.", field="T")
                sums = np.asarray(m.sum(axis=1)).ravel()
                bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_ATOL + _SLACK)
                if bad.size:
                    raise InputError(f"every row of T must sum to 1 (within {ROW_ATOL:g}). Row "
                                     f"({a}, {int(bad[0])}) sums to {float(sums[bad[0]]):.9g} "
                                     "instead.", field="T")
                out.append(m)
            object.__setattr__(self, "T", tuple(out))
        else:
            Td = np.asarray(T, dtype=float)
            if Td.shape != (n_a, n_s, n_s):
                raise InputError(f"T must have shape ({n_a}, {n_s}, {n_s}) to match O. Got "
                                 f"{Td.shape} instead.", field="T")
            if not np.all(np.isfinite(Td)) or np.any(Td < 0):
                raise InputError("T must have finite, non-negative entries.", field="T")
            _check_rows(Td.sum(axis=-1), "T")
            object.__setattr__(self, "T", Td)
        if not np.all(np.isfinite(O)) or np.any(O < 0):
            raise InputError("O must have finite, non-negative entries.", field="O")
        _check_rows(O.sum(axis=-1), "O")
        object.__setattr__(self, "O", O)
        R = np.asarray(self.R, dtype=float)
        if R.shape != (n_a, n_s):
            raise InputError(f"R must have shape ({n_a}, {n_s}) (R[a, s]). Got {R.shape} "
                             "instead.", field="R")
        if not np.all(np.isfinite(R)):
            raise InputError("R must have finite entries.", field="R")
        object.__setattr__(self, "R", R)
        g = self.discount
        if isinstance(g, bool) or not isinstance(g, (int, float, np.floating, np.integer)) \
                or not (0.0 <= float(g) <= 1.0):
            raise InputError(f"discount must be a number in [0, 1]. Got {g!r} instead.",
                             field="discount")
        object.__setattr__(self, "discount", float(g))
        b0 = np.asarray(self.b0, dtype=float)
        if b0.shape != (n_s,):
            raise InputError(f"b0 must have shape ({n_s},). Got {b0.shape} instead.", field="b0")
        if not np.all(np.isfinite(b0)) or np.any(b0 < 0):
            raise InputError("b0 must have finite, non-negative entries.", field="b0")
        if abs(b0.sum() - 1.0) > ROW_ATOL + _SLACK:
            raise InputError(f"b0 must sum to 1 (within {ROW_ATOL:g}). Got sum "
                             f"{float(b0.sum()):.9g} instead.", field="b0")
        object.__setattr__(self, "b0", b0)
        if self.terminal is not None:
            term = np.asarray(self.terminal)
            if term.shape != (n_s,) or term.dtype != bool:
                raise InputError(f"terminal must be a boolean mask of shape ({n_s},). Got "
                                 f"{term.dtype} array of shape {term.shape} instead.",
                                 field="terminal")
            object.__setattr__(self, "terminal", term)
        object.__setattr__(self, "state_names", _names(self.state_names, n_s, "s", "state"))
        object.__setattr__(self, "action_names", _names(self.action_names, n_a, "a", "action"))
        object.__setattr__(self, "observation_names",
                           _names(self.observation_names, n_o, "o", "observation"))

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        return self.O.shape[1]

    @property
    def n_actions(self) -> int:
        return self.O.shape[0]

    @property
    def n_observations(self) -> int:
        return self.O.shape[2]

    @property
    def is_sparse(self) -> bool:
        """True when ``T`` is stored as one sparse matrix per action."""
        return isinstance(self.T, tuple)

    def transition(self, a: int) -> np.ndarray | sp.csr_matrix:
        """``T[a]`` as an (S, S) matrix (dense array or CSR)."""
        return self.T[a]

    def dense_T(self) -> np.ndarray:
        """``T`` as a dense (A, S, S) array (may be large)."""
        if self.is_sparse:
            return np.stack([m.toarray() for m in self.T])
        return self.T

    def sparse_T(self) -> tuple[sp.csr_matrix, ...]:
        """``T`` as one CSR matrix per action."""
        if self.is_sparse:
            return self.T
        return tuple(sp.csr_matrix(self.T[a]) for a in range(self.n_actions))

    def nnz_T(self) -> int:
        """Number of non-zero transition probabilities."""
        if self.is_sparse:
            return int(sum(m.nnz for m in self.T))
        return int(np.count_nonzero(self.T))

    def absorbing(self) -> TabularPOMDP:
        """The same POMDP with terminal states as zero-reward self-loops (value 0).

        Solvers work on this form so that ``terminal`` needs no special case.
        """
        if self.terminal is None or not self.terminal.any():
            return self
        term = self.terminal
        R = self.R.copy()
        R[:, term] = 0.0
        idx = np.flatnonzero(term)
        if self.is_sparse:
            mats = []
            for m in self.T:
                m = m.tolil(copy=True)
                for s in idx:
                    m.rows[s] = [int(s)]
                    m.data[s] = [1.0]
                mats.append(m.tocsr())
            T: Any = tuple(mats)
        else:
            T = self.T.copy()
            T[:, idx, :] = 0.0
            T[:, idx, idx] = 1.0
        return TabularPOMDP(T=T, O=self.O, R=R, discount=self.discount, b0=self.b0,
                            terminal=self.terminal, state_names=self.state_names,
                            action_names=self.action_names,
                            observation_names=self.observation_names, name=self.name,
                            meta=dict(self.meta))

    def with_sparse_T(self, sparse: bool = True) -> TabularPOMDP:
        """A copy with ``T`` stored sparse (or dense when ``sparse`` is False)."""
        T: Any = self.sparse_T() if sparse else self.dense_T()
        return TabularPOMDP(T=T, O=self.O, R=self.R, discount=self.discount, b0=self.b0,
                            terminal=self.terminal, state_names=self.state_names,
                            action_names=self.action_names,
                            observation_names=self.observation_names, name=self.name,
                            meta=dict(self.meta))

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        return (f"TabularPOMDP(name={self.name!r}, states={self.n_states}, "
                f"actions={self.n_actions}, observations={self.n_observations}, "
                f"discount={self.discount}, T={kind})")
