"""Value bounds for generic discrete POMDPs: QMDP, FIB, blind policies, sawtooth interpolation.

Upper bounds (QMDP, the fast informed bound) and the blind-policy lower bound initialise the
point-based solvers; :class:`SawtoothUpperBound` interpolates upper values between belief points.
:class:`PreparedPOMDP` holds the per-action matrices (dense or sparse) every solver shares.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

try:  # a scikit-learn dependency; without it BLAS threads are left alone
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

from trimpomdp._validate import nonneg_float
from trimpomdp.errors import InputError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers import _kernels
from trimpomdp.solvers.info import SolveInfo

#: models with more states, or sparser transitions, use scipy.sparse kernels.
SPARSE_STATES = 400
SPARSE_DENSITY = 0.1


class PreparedPOMDP:
    """Per-action transition / observation matrices of a POMDP, ready for vectorised backups.

    Terminal states become zero-reward self-loops; rows are renormalised (files round to 1e-6).
    """

    def __init__(self, pomdp: TabularPOMDP) -> None:
        m = pomdp.absorbing()
        self.pomdp = m
        self.S, self.A, self.nO = m.n_states, m.n_actions, m.n_observations
        self.gamma = m.discount
        self.R = m.R
        self.O = m.O / m.O.sum(axis=-1, keepdims=True)
        nnz = m.nnz_T()
        self.sparse = m.is_sparse or self.S > SPARSE_STATES and nnz < SPARSE_DENSITY * self.A * \
            self.S * self.S
        self.T: list = []   # T[a] @ x
        self.Tt: list = []  # Tt[a] @ b == b @ T[a]
        for a in range(self.A):
            t = m.T[a]
            if self.sparse:
                t = sp.csr_matrix(t)
                rs = np.asarray(t.sum(axis=1)).ravel()
                t = sp.diags(1.0 / rs) @ t
                t = sp.csr_matrix(t)
                self.T.append(t)
                self.Tt.append(sp.csr_matrix(t.T))
            else:
                t = np.asarray(t, dtype=float)
                t = t / t.sum(axis=1, keepdims=True)
                self.T.append(t)
                self.Tt.append(np.ascontiguousarray(t.T))
        self.b0 = m.b0 / m.b0.sum()
        # absorbing zero-reward states (terminal states included) have value exactly 0: bounds
        # start there at 0, so with a discount near 1 an episodic model converges in its horizon
        self.zero_value = np.ones(self.S, dtype=bool)
        for a in range(self.A):
            diag = self.T[a].diagonal() if self.sparse else np.diag(self.T[a])
            self.zero_value &= (np.asarray(diag) >= 1.0 - 1e-12) & (self.R[a] == 0)
        # TO[a] stacks T[a] * O[a][:, o] for every o: (nO * S, S); used by FIB.
        self._TO: list | None = None
        self._stack: _kernels.CSRStack | None = None

    @property
    def stack(self) -> _kernels.CSRStack:
        """T (CSR, stacked) and O as the successor kernel takes them (built on first use)."""
        if self._stack is None:
            self._stack = _kernels.CSRStack(self.T, self.Tt, self.O)
        return self._stack

    def prior(self, b: np.ndarray, a: int) -> np.ndarray:
        """Predicted next-state distribution b @ T[a]."""
        return self.Tt[a] @ b

    def successors(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All successors of ``b``: P[a, o] and unnormalised next beliefs J[a, o, s'].

        ``J[a, o] / P[a, o]`` is the belief after doing a and seeing o.
        """
        P, J, _ = _kernels.successors(self.stack, b)
        return P, J

    def successors_into(self, b: np.ndarray, out: np.ndarray,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`successors` writing J into ``out`` (A, nO, S); also returns the support."""
        return _kernels.successors(self.stack, b, out)

    def stacked_TO(self) -> list:
        """[(nO * S, S)] per action: rows (o, s) hold T[a][s, :] * O[a][:, o]."""
        if self._TO is None:
            out = []
            for a in range(self.A):
                blocks = []
                for o in range(self.nO):
                    if self.sparse:
                        blocks.append(self.T[a] @ sp.diags(self.O[a][:, o]))
                    else:
                        blocks.append(self.T[a] * self.O[a][:, o][None, :])
                out.append(sp.vstack(blocks).tocsr() if self.sparse else np.vstack(blocks))
            self._TO = out
        return self._TO

    def reward_bounds(self) -> tuple[float, float]:
        """Trivial value bounds min R / (1 - γ), max R / (1 - γ) (γ < 1)."""
        g = self.gamma
        if g >= 1.0:
            raise InputError("this bound needs a discount < 1. Got 1.0 instead.",
                             field="discount")
        return float(self.R.min()) / (1 - g), float(self.R.max()) / (1 - g)


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while solving.

    Backups are many small matrix products: BLAS threads only spin (and burn CPU seconds, which
    is what ``timeout`` counts), so solvers run single-threaded. Needs threadpoolctl (a
    scikit-learn dependency); a no-op without it.
    """
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _deadline(seconds: float | None) -> float:
    return np.inf if seconds is None else time.process_time() + seconds


def qmdp_values(model: PreparedPOMDP, *, tol: float = 1e-6, max_iter: int = 100_000,
                max_seconds: float | None = None) -> np.ndarray:
    """Q_MDP(s, a) as an (A, S) array: the fully observable MDP's action values (upper bound).

    Value iteration from the trivial upper bound, so every iterate is an upper bound.
    """
    _, hi = model.reward_bounds()
    V = np.where(model.zero_value, 0.0, hi)
    Q = np.empty((model.A, model.S))
    end = _deadline(max_seconds)
    g = model.gamma
    for _ in range(max_iter):
        for a in range(model.A):
            Q[a] = model.R[a] + g * (model.T[a] @ V)
        Vn = Q.max(axis=0)
        delta = float(np.max(np.abs(Vn - V)))
        V = Vn
        if delta * g / (1 - g) < tol or time.process_time() > end:
            break
    return Q


def fib_values(model: PreparedPOMDP, *, start: np.ndarray | None = None, tol: float = 1e-6,
               max_iter: int = 100_000, max_seconds: float | None = None) -> np.ndarray:
    """Fast informed bound Q_FIB(s, a) as an (A, S) array (Hauskrecht 2000), ≤ QMDP.

    Iterated from ``start`` (default QMDP), an upper bound that the FIB operator only lowers.
    """
    Q = qmdp_values(model, tol=tol, max_seconds=max_seconds) if start is None else start.copy()
    TO = model.stacked_TO()
    end = _deadline(max_seconds)
    g, S, nO = model.gamma, model.S, model.nO
    Qt = np.ascontiguousarray(Q.T)  # (S, A)
    for _ in range(max_iter):
        Qn = np.empty_like(Q)
        for a in range(model.A):
            M = TO[a] @ Qt  # (nO*S, A)
            Qn[a] = model.R[a] + g * M.reshape(nO, S, model.A).max(axis=2).sum(axis=0)
        Qn = np.minimum(Qn, Q)  # keep the tighter bound (monotone anyway, guards round-off)
        delta = float(np.max(np.abs(Qn - Q)))
        Q = Qn
        Qt = np.ascontiguousarray(Q.T)
        if delta * g / (1 - g) < tol or time.process_time() > end:
            break
    return Q


def blind_alphas(model: PreparedPOMDP, *, max_seconds: float | None = None) -> np.ndarray:
    """Alpha vectors (A, S) of the blind policies "always do a" (a lower bound).

    Solved exactly by a linear solve; falls back to value iteration from min R / (1 - γ).
    """
    g = model.gamma
    out = np.empty((model.A, model.S))
    lo, _ = model.reward_bounds()
    for a in range(model.A):
        try:
            if model.sparse:
                M = sp.identity(model.S, format="csc") - g * sp.csc_matrix(model.T[a])
                x = spla.spsolve(M, model.R[a])
            else:
                x = np.linalg.solve(np.eye(model.S) - g * model.T[a], model.R[a])
            if not np.all(np.isfinite(x)):
                raise np.linalg.LinAlgError
            # one backup pulls any round-off back below the true blind value's fixed point
            out[a] = model.R[a] + g * (model.T[a] @ x) - 1e-9 * max(1.0, float(np.abs(x).max()))
        except (np.linalg.LinAlgError, RuntimeError):
            v = np.full(model.S, lo)
            end = _deadline(max_seconds)
            for _ in range(10_000):
                vn = model.R[a] + g * (model.T[a] @ v)
                if np.max(np.abs(vn - v)) < 1e-9 or time.process_time() > end:
                    v = vn
                    break
                v = vn
            out[a] = v
    return out


class SawtoothUpperBound:
    """Upper bound from corner values and belief points, by sawtooth interpolation.

    UB(b) = min(c·b, min_k c·b + φ_k(b) (v_k − c·b_k)), φ_k(b) = min_{s: b_k(s)>0} b(s)/b_k(s)
    (Hauskrecht 2000; HSVI). Points are stored sparsely; evaluation is vectorised: only points
    whose support lies inside a query's support (φ > 0) are examined.
    """

    #: dense support-indicator matrices up to this many entries, sparse beyond.
    DENSE_PM = 4_000_000

    def __init__(self, corner: np.ndarray) -> None:
        self.corner = np.asarray(corner, dtype=float).copy()
        self._idx: list[np.ndarray] = []
        self._val: list[np.ndarray] = []
        self.v = np.empty(0)
        self.c = np.empty(0)
        self._built = 0
        self._main: tuple | None = None
        # the points as growing CSR buffers, for the native kernel
        self._ptr = np.zeros(1024, dtype=np.int64)
        self._bidx = np.empty(4096, dtype=np.int64)
        self._bval = np.empty(4096)
        self._binv = np.empty(4096)
        self._piv: tuple[np.ndarray, np.ndarray, int] | None = None

    def __len__(self) -> int:
        return len(self._idx)

    def add(self, b: np.ndarray, value: float) -> int:
        """Add the point (b, value); returns its key (for :meth:`update`)."""
        if b.shape != self.corner.shape:
            raise ValueError(f"a sawtooth point must have {self.corner.shape[0]} entries")
        idx = np.flatnonzero(b > 0)
        val = b[idx]
        n, lo = len(self._idx), int(self._ptr[len(self._idx)])
        if n + 2 > self._ptr.shape[0]:
            self._ptr = np.concatenate([self._ptr, np.zeros_like(self._ptr)])
        while lo + idx.size > self._bidx.shape[0]:
            self._bidx = np.concatenate([self._bidx, np.empty_like(self._bidx)])
            self._bval = np.concatenate([self._bval, np.empty_like(self._bval)])
            self._binv = np.concatenate([self._binv, np.empty_like(self._binv)])
        self._bidx[lo:lo + idx.size] = idx
        self._bval[lo:lo + idx.size] = val
        self._binv[lo:lo + idx.size] = 1.0 / val
        self._ptr[n + 1] = lo + idx.size
        self._idx.append(idx)
        self._val.append(val)
        self.v = np.append(self.v, value)
        self.c = np.append(self.c, float(self.corner[idx] @ val))
        return len(self._idx) - 1

    def set_corner(self, corner: np.ndarray) -> None:
        """Replace the corner values with lower (tighter) ones."""
        self.corner = np.minimum(self.corner, corner)
        if self._idx:
            idx, val, starts, _ = self._concat(0, len(self._idx))
            self.c = np.add.reduceat(self.corner[idx] * val, starts)

    def update(self, key: int, value: float) -> None:
        """Lower the value stored at point ``key``."""
        self.v[key] = min(self.v[key], value)

    def _concat(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lens = np.fromiter((len(i) for i in self._idx[lo:hi]), dtype=np.int64, count=hi - lo)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        return (np.concatenate(self._idx[lo:hi]), np.concatenate(self._val[lo:hi]), starts,
                lens)

    def _main_arrays(self) -> tuple:
        n = len(self._idx)
        if self._main is None or n - self._built > max(32, self._built // 8):
            S = self.corner.shape[0]
            idx, val, starts, lens = self._concat(0, n)
            rows = np.repeat(np.arange(n), lens)
            if S * n <= self.DENSE_PM:
                pm = np.zeros((S, n), dtype=np.float32)
                pm[idx, rows] = 1.0
            else:
                pm = sp.csr_matrix((np.ones(idx.size), (idx, rows)), shape=(S, n))
            self._main = (idx, val, starts, lens, pm)
            self._built = n
        return self._main

    def values(self, B: np.ndarray) -> np.ndarray:
        """Upper bound at each row of ``B`` (M, S) (dense beliefs)."""
        B = np.atleast_2d(B)
        n = len(self._idx)
        if _kernels.backend() == "native":
            nnz = int(self._ptr[n])
            ptr, bidx = self._ptr[:n + 1], self._bidx[:nnz]
            if self._piv is None or n - self._piv[2] > max(32, self._piv[2] // 8):
                self._piv = (*_kernels.pivots(ptr, bidx, self.corner.shape[0]), n)
            return _kernels.sawtooth(B, self.corner, ptr, bidx, self._bval[:nnz],
                                     self.v - self.c, *self._piv, inv=self._binv[:nnz])
        base = B @ self.corner
        if n == 0:
            return base
        gain = self.v - self.c  # < 0 for useful points
        corr = np.zeros(B.shape[0])
        idx, val, starts, lens, pm = self._main_arrays()
        nb = self._built
        if sp.issparse(pm):
            counts = (sp.csr_matrix(B > 0, dtype=float) @ pm).tocoo()
            hit = counts.data == lens[counts.col]
            cm, ck = counts.row[hit], counts.col[hit]
        else:
            counts = (B > 0).astype(np.float32) @ pm            # |supp(b_m) ∩ supp(b_k)|
            cm, ck = np.nonzero(counts == lens[None, :])
        use = gain[ck] < 0
        cm, ck = cm[use], ck[use]
        if cm.size:
            seg = lens[ck]
            first = np.concatenate([[0], np.cumsum(seg)[:-1]])
            pos = np.repeat(starts[ck] - first, seg) + np.arange(int(seg.sum()))
            ratios = B[np.repeat(cm, seg), idx[pos]] / val[pos]
            phi = np.minimum.reduceat(ratios, first)
            np.minimum.at(corr, cm, phi * gain[ck])
        if n > nb:  # points added since the last rebuild: direct evaluation
            tidx, tval, tstarts, _ = self._concat(nb, n)
            phi = np.minimum.reduceat(B[:, tidx] / tval, tstarts, axis=1)   # (M, n - nb)
            corr = np.minimum(corr, (phi * np.minimum(gain[nb:], 0.0)).min(axis=1))
        return base + corr

    def value(self, b: np.ndarray) -> float:
        """Upper bound at one belief."""
        return float(self.values(b[None, :])[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundValues:
    """Initial bounds of a POMDP: lower alpha vectors (blind) and upper Q values (FIB or QMDP)."""

    lower_alphas: np.ndarray
    lower_actions: np.ndarray
    upper_Q: np.ndarray


class QMDPSolver:
    """QMDP: the MDP's Q values as alpha vectors (an upper bound on the POMDP value).

    Acting on it is the classic QMDP heuristic policy.
    """

    def __init__(self, *, tol: float = 1e-6, max_seconds: float | None = None) -> None:
        self.tol = nonneg_float(tol, "tol", strict=True)
        self.max_seconds = None if max_seconds is None else nonneg_float(
            max_seconds, "max_seconds", strict=True)

    def _Q(self, model: PreparedPOMDP) -> np.ndarray:
        return qmdp_values(model, tol=self.tol, max_seconds=self.max_seconds)

    def solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        """Solve; returns (policy, info) where info.upper is the bound at b0."""
        t0 = time.process_time()
        model = PreparedPOMDP(pomdp)
        if model.gamma >= 1.0:
            raise InputError(f"{type(self).__name__} needs a discount < 1 (the MDP values are "
                             "infinite otherwise). Got 1.0 instead.", field="discount")
        with single_threaded_blas():
            Q = self._Q(model)
        pol = AlphaVectorPolicy(alphas=Q, actions=np.arange(model.A), pomdp=pomdp)
        up = float((Q @ model.b0).max())
        lo = blind_alphas(model)
        low = float((lo @ model.b0).max())
        secs = time.process_time() - t0
        return pol, SolveInfo(seconds=secs, iterations=1, backups=0, n_alpha=model.A, lower=low,
                              upper=up, gap_trace=((secs, low, up),), solver=type(self).__name__)

    def solve(self, pomdp: TabularPOMDP) -> AlphaVectorPolicy:
        """Solve and return the policy."""
        return self.solve_info(pomdp)[0]


class FIBSolver(QMDPSolver):
    """The fast informed bound (tighter than QMDP, still an upper bound) as a policy."""

    def _Q(self, model: PreparedPOMDP) -> np.ndarray:
        return fib_values(model, tol=self.tol, max_seconds=self.max_seconds)
