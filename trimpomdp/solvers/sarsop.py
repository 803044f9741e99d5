"""A SARSOP-style point-based solver for any discrete POMDP, in numpy.

Samples a belief tree from b0 guided by the gap between the bounds (Kurniawati, Hsu & Lee 2008),
backs up the lower bound (alpha vectors) and the upper bound (sawtooth points) at the sampled
beliefs, and prunes alpha vectors that are dominated or best at no belief of the tree reachable
under not-provably-suboptimal actions. Stops at ``precision`` (gap at b0) or ``timeout`` CPU s.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from trimpomdp._validate import nonneg_float
from trimpomdp.errors import InputError, SolverError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers import _kernels
from trimpomdp.solvers.bounds import (
    PreparedPOMDP,
    SawtoothUpperBound,
    blind_alphas,
    fib_values,
    single_threaded_blas,
)
from trimpomdp.solvers.info import SolveInfo

#: successors with a smaller observation probability are not expanded.
P_MIN = 1e-12

Progress = Callable[[float, float, float, int], None]


class AlphaSet:
    """A growing set of alpha vectors (k, S) with actions; drops pointwise-dominated vectors.

    Each vector remembers the vectors its backup used (one per observation), so that pruning
    can keep them: the "action of the best vector" policy then provably earns at least the
    lower bound (V_Γ ≤ T^π V_Γ), instead of only at the tree's beliefs. Vectors live in a
    buffer grown by doubling, so adding one does not copy the set.
    """

    def __init__(self, alphas: np.ndarray, actions: np.ndarray) -> None:
        G = np.array(alphas, dtype=float)
        self._buf = np.empty((max(16, 2 * G.shape[0]), G.shape[1]))
        self._n = G.shape[0]
        self._buf[:self._n] = G
        self.a = np.array(actions, dtype=np.int64)
        self.ids = np.arange(self._n, dtype=np.int64)
        self.refs: dict[int, np.ndarray] = {int(i): np.array([i]) for i in self.ids}
        self.alias: dict[int, int] = {}
        self.next_id = int(self._n)

    @property
    def G(self) -> np.ndarray:
        """The vectors (k, S) (a view of the buffer)."""
        return self._buf[:self._n]

    def __len__(self) -> int:
        return self._n

    def _compact(self, keep: np.ndarray) -> None:
        m = int(keep.sum())
        self._buf[:m] = self._buf[:self._n][keep]
        self._n = m
        self.a = self.a[keep]
        self.ids = self.ids[keep]

    def add(self, alpha: np.ndarray, action: int, refs: np.ndarray) -> None:
        """Add ``alpha`` (backed up from the vectors ``refs``), removing those it dominates."""
        new_id = self.next_id
        self.next_id += 1
        holes = np.flatnonzero(_kernels.dominated(self.G, alpha, 1e-12))
        for r in self.ids[holes]:
            self.alias[int(r)] = new_id
        self.refs[new_id] = np.asarray(refs, dtype=np.int64)
        if holes.size:  # the new vector takes the first hole; the last rows fill the others
            k0 = int(holes[0])
            self._buf[k0] = alpha
            self.a[k0] = action
            self.ids[k0] = new_id
            for k in holes[:0:-1]:
                last = self._n - 1
                if k != last:
                    self._buf[k] = self._buf[last]
                    self.a[k] = self.a[last]
                    self.ids[k] = self.ids[last]
                self._n -= 1
            self.a = self.a[:self._n].copy()
            self.ids = self.ids[:self._n].copy()
            return
        if self._n == self._buf.shape[0]:
            self._buf = np.concatenate([self._buf, np.empty_like(self._buf)])
        self._buf[self._n] = alpha
        self._n += 1
        self.a = np.append(self.a, action)
        self.ids = np.append(self.ids, new_id)

    def _resolve(self, r: int) -> int:
        while r in self.alias:
            r = self.alias[r]
        return r

    def keep(self, mask: np.ndarray) -> None:
        """Keep the vectors in ``mask`` and, transitively, every vector they were built from."""
        pos = {int(i): k for k, i in enumerate(self.ids)}
        keep = np.array(mask, dtype=bool)
        stack = [int(i) for i in self.ids[keep]]
        while stack:
            i = stack.pop()
            for r in self.refs.get(i, ()):
                k = pos.get(self._resolve(int(r)))
                if k is not None and not keep[k]:
                    keep[k] = True
                    stack.append(int(self.ids[k]))
        for i in self.ids[~keep]:
            self.refs.pop(int(i), None)
        self._compact(keep)


def _arr(x: np.ndarray | None) -> np.ndarray:
    """A per-node array of an expanded node (never None there)."""
    if x is None:
        raise SolverError("internal error: a belief node was used before it was expanded")
    return x


class _Tree:
    """Belief tree: sparse beliefs, bounds (numpy, grown by doubling), successors of expanded nodes."""

    def __init__(self) -> None:
        self.idx: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.lb = np.empty(1024)
        self.ub = np.empty(1024)
        self.kids: list[np.ndarray | None] = []   # (A, O) node ids, -1 for p = 0
        self.P: list[np.ndarray | None] = []      # (A, O)
        self.Rb: list[np.ndarray | None] = []     # (A,)
        self.Qlb: list[np.ndarray | None] = []
        self.Qub: list[np.ndarray | None] = []
        self.ukey: list[int] = []

    def add_many(self, B: np.ndarray, lb: np.ndarray, ub: np.ndarray,
                 support: np.ndarray | None = None) -> np.ndarray:
        """Add the rows of ``B`` as nodes (non-zero only in ``support``); returns their ids."""
        n0, m = len(self.idx), B.shape[0]
        while n0 + m > self.lb.shape[0]:
            self.lb = np.concatenate([self.lb, np.empty_like(self.lb)])
            self.ub = np.concatenate([self.ub, np.empty_like(self.ub)])
        self.lb[n0:n0 + m] = lb
        self.ub[n0:n0 + m] = ub
        if support is None:
            rows, cols = np.nonzero(B > 0)
        else:
            rows, c = np.nonzero(B[:, support] > 0)
            cols = support[c]
        cuts = np.searchsorted(rows, np.arange(m + 1)).tolist()
        vals = B[rows, cols]
        self.idx.extend([cols[cuts[k]:cuts[k + 1]] for k in range(m)])
        self.val.extend([vals[cuts[k]:cuts[k + 1]] for k in range(m)])
        self.kids.extend([None] * m)
        self.P.extend([None] * m)
        self.Rb.extend([None] * m)
        self.Qlb.extend([None] * m)
        self.Qub.extend([None] * m)
        self.ukey.extend([-1] * m)
        return np.arange(n0, n0 + m)

    def add(self, b: np.ndarray, lb: float, ub: float) -> int:
        return int(self.add_many(b[None, :], np.array([lb]), np.array([ub]))[0])

    def dense(self, i: int, S: int) -> np.ndarray:
        b = np.zeros(S)
        b[self.idx[i]] = self.val[i]
        return b

    def __len__(self) -> int:
        return len(self.idx)


class SARSOPSolver:
    """SARSOP-style solver: ``solve(pomdp) -> AlphaVectorPolicy``, ``solve_info`` adds a SolveInfo.

    ``precision``: stop when upper − lower at b0 is at most this. ``timeout``: CPU seconds
    (``time.process_time``), including the initial bounds. ``epsilon``: trial depth control as a
    fraction of the current gap at b0 (SARSOP's ε). ``progress`` is called with
    (cpu_seconds, lower, upper, n_alpha) about every ``progress_every`` CPU seconds.
    """

    def __init__(self, *, precision: float = 1e-3, timeout: float = 60.0,
                 epsilon: float = 0.5, max_trials: int | None = None,
                 prune_growth: float = 1.0, max_depth: int | None = None,
                 progress: Progress | None = None, progress_every: float = 2.0) -> None:
        self.precision = nonneg_float(precision, "precision")
        self.timeout = nonneg_float(timeout, "timeout", strict=True)
        self.epsilon = nonneg_float(epsilon, "epsilon", strict=True)
        if max_trials is not None and (isinstance(max_trials, bool) or int(max_trials) < 1):
            raise InputError(f"The 'max_trials' parameter must be a positive integer or None. "
                             f"Got {max_trials!r} instead.", field="max_trials")
        self.max_trials = max_trials
        self.prune_growth = nonneg_float(prune_growth, "prune_growth")
        self.max_depth = max_depth
        self.progress = progress
        self.progress_every = progress_every
        self._hsvi = 1.0

    def solve(self, pomdp: TabularPOMDP) -> AlphaVectorPolicy:
        """Solve ``pomdp`` and return an :class:`AlphaVectorPolicy`."""
        return self.solve_info(pomdp)[0]

    # ------------------------------------------------------------------------------------------
    def solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        """Solve ``pomdp``; returns (policy, info) with the bounds at b0."""
        with single_threaded_blas():
            return self._solve_info(pomdp)

    def _solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        t0 = time.process_time()
        deadline = t0 + self.timeout
        K = PreparedPOMDP(pomdp)
        if K.gamma >= 1.0:
            raise InputError("SARSOPSolver needs a discount < 1. Got 1.0 instead.",
                             field="discount")
        S, A, g = K.S, K.A, K.gamma
        budget = 0.25 * self.timeout
        Qup = fib_values(K, tol=1e-6 * max(1.0, float(np.abs(K.R).max())),
                         max_seconds=budget)
        self._K, self._S = K, S
        self._J = np.empty((A, K.nO, S))
        self._supp = np.arange(S)
        self.G = AlphaSet(blind_alphas(K, max_seconds=budget), np.arange(A))
        self.U = SawtoothUpperBound(Qup.max(axis=0))
        tree = _Tree()
        b0 = K.b0
        root = tree.add(b0, float((self.G.G @ b0).max()), self.U.value(b0))
        lo, hi = K.reward_bounds()
        span = max(hi - lo, 1e-12) * (1 - g)
        max_depth = self.max_depth or int(min(1000, math.ceil(
            math.log(max(self.precision, 1e-9) * (1 - g) / span) / math.log(g)) + 1))
        self.backups = 0
        trials = 0
        trace = [(time.process_time() - t0, float(tree.lb[root]), float(tree.ub[root]))]
        last_prog = time.process_time()
        n_at_prune = len(self.G)
        corner_time = 0.0
        self._corner_next = 0
        self._expand(tree, root)
        self._backup(tree, root)
        while True:
            now = time.process_time()
            gap = tree.ub[root] - tree.lb[root]
            if gap <= self.precision or now >= deadline:
                break
            if self.max_trials is not None and trials >= self.max_trials:
                break
            eps = max(self.epsilon * gap, self.precision / 2)
            path = self._trial(tree, root, eps, max_depth, deadline)
            for i in reversed(path):
                self._backup(tree, i)
                if time.process_time() >= deadline:
                    break
            trials += 1
            if corner_time < 0.1 * (time.process_time() - t0):
                c0 = time.process_time()
                self._corner_backup()
                corner_time += time.process_time() - c0
            if len(self.G) > max(n_at_prune * (1 + self.prune_growth), n_at_prune + 10):
                self._prune(tree, root)
                n_at_prune = len(self.G)
            now = time.process_time()
            if now - t0 - trace[-1][0] > 0.05 * max(1.0, self.timeout / 60):
                trace.append((now - t0, float(tree.lb[root]), float(tree.ub[root])))
            if self.progress is not None and now - last_prog >= self.progress_every:
                self.progress(now - t0, tree.lb[root], tree.ub[root], len(self.G))
                last_prog = now
        self._prune(tree, root)
        secs = time.process_time() - t0
        lower, upper = float(tree.lb[root]), float(tree.ub[root])
        trace.append((secs, lower, upper))
        policy = AlphaVectorPolicy(alphas=self.G.G.copy(), actions=self.G.a.copy(), pomdp=pomdp,
                                   meta={"solver": "sarsop", "lower": lower, "upper": upper})
        info = SolveInfo(seconds=secs, iterations=trials, backups=self.backups,
                         n_alpha=len(self.G), lower=lower, upper=upper, gap_trace=tuple(trace),
                         solver="sarsop", converged=bool(upper - lower <= self.precision),
                         extra={"tree_nodes": len(tree), "sawtooth_points": len(self.U)})
        return policy, info

    # ------------------------------------------------------------------------------------------
    def _children(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """P (A, O), mask of P > P_MIN, unnormalised successors J (A, O, S) and R·b (A,).

        J lives in a scratch buffer that the next call overwrites; ``self._supp`` is its support.
        """
        P, J, self._supp = self._K.successors_into(b, self._J)
        return P, P > P_MIN, J, self._K.R @ b

    def _expand(self, tree: _Tree, i: int) -> None:
        b = tree.dense(i, self._S)
        P, mask, J, Rb = self._children(b)
        kids = np.full(P.shape, -1, dtype=np.int64)
        Bk = J[mask] / P[mask][:, None]
        lbk = _kernels.best_alpha(Bk, self.G.G, self._supp)[1]
        ubk = Bk @ self.U.corner  # refined by sawtooth lazily, for actions that may be best
        kids[mask] = tree.add_many(Bk, lbk, np.maximum(ubk, lbk), self._supp)
        tree.kids[i] = kids
        tree.P[i] = P
        tree.Rb[i] = Rb
        self._q(tree, i)

    def _q(self, tree: _Tree, i: int) -> None:
        """Q bounds of node i from its children's stored bounds."""
        kids, P = _arr(tree.kids[i]), _arr(tree.P[i])
        lbk = np.where(kids >= 0, tree.lb[np.maximum(kids, 0)], 0.0)
        ubk = np.where(kids >= 0, tree.ub[np.maximum(kids, 0)], 0.0)
        g = self._K.gamma
        tree.Qlb[i] = tree.Rb[i] + g * (P * lbk).sum(axis=1)
        tree.Qub[i] = tree.Rb[i] + g * (P * ubk).sum(axis=1)

    def _backup(self, tree: _Tree, i: int) -> None:
        """Lower (alpha) and upper (sawtooth) backup at node i; refreshes its children."""
        if tree.kids[i] is None:
            self._expand(tree, i)
        K, g = self._K, self._K.gamma
        b = tree.dense(i, self._S)
        P, mask, J, Rb = self._children(b)
        A, nO = P.shape
        Gm = self.G.G
        best, bestv = _kernels.best_alpha(J.reshape(A * nO, -1), Gm, self._supp)
        bestv = bestv.reshape(A, nO)
        qlb = Rb + g * bestv.sum(axis=1)
        a = int(qlb.argmax())
        sel = best.reshape(A, nO)[a]
        w = (K.O[a] * Gm[sel].T).sum(axis=1)          # w(s') = Σ_o O[a,s',o] α_o(s')
        alpha = K.R[a] + g * (K.T[a] @ w)
        val = float(alpha @ b)
        if val > tree.lb[i] + 1e-12 * max(1.0, abs(val)):
            self.G.add(alpha, a, self.G.ids[sel])
            tree.lb[i] = val
        kids = _arr(tree.kids[i])
        ks = kids[mask]
        lbk = bestv[mask] / P[mask]
        tree.lb[ks] = np.maximum(tree.lb[ks], lbk)
        tree.ub[ks] = np.maximum(tree.ub[ks], tree.lb[ks])
        self._q(tree, i)
        # upper bound: refresh the children (sawtooth) of the actions that can still be best;
        # Q upper values only fall, so an action whose stale value is below the best fresh one
        # cannot be the max.
        Qub = _arr(tree.Qub[i])
        best_fresh = -np.inf
        for aa in np.argsort(-Qub):
            if Qub[aa] <= best_fresh:
                break
            m = mask[aa]
            ka = kids[aa][m]
            ubk = self.U.values(J[aa][m] / P[aa][m][:, None])
            tree.ub[ka] = np.maximum(np.minimum(tree.ub[ka], ubk), tree.lb[ka])
            Qub[aa] = Rb[aa] + g * float(P[aa][m] @ tree.ub[ka])
            best_fresh = max(best_fresh, Qub[aa])
        ub = float(Qub.max())
        if ub < tree.ub[i]:
            tree.ub[i] = max(ub, tree.lb[i])
        if tree.ukey[i] < 0:
            if tree.ub[i] < self.U.value(b) - 1e-9 * max(1.0, abs(tree.ub[i])):
                tree.ukey[i] = self.U.add(b, tree.ub[i])
        else:
            self.U.update(tree.ukey[i], tree.ub[i])
        self.backups += 1

    def _corner_backup(self, rows: int = 4096) -> None:
        """Back up the upper bound at some corner beliefs e_s (round robin) with the sawtooth.

        Corner values start at the FIB; lowering them tightens the bound near the corners.
        """
        K, g = self._K, self._K.gamma
        TO = K.stacked_TO()
        S, nO, A = K.S, K.nO, K.A
        n = max(1, min(S, rows // max(1, nO * A)))
        s0 = self._corner_next
        states = np.arange(s0, min(S, s0 + n))
        self._corner_next = 0 if states[-1] + 1 >= S else states[-1] + 1
        Q = np.empty((A, states.size))
        for a in range(A):
            sel = (np.arange(nO)[:, None] * S + states[None, :]).ravel()   # rows (o, s)
            M = TO[a][sel]
            M = M.toarray() if sp.issparse(M) else M
            p = M.sum(axis=1)
            ok = p > P_MIN
            ub = np.zeros(p.shape)
            ub[ok] = self.U.values(M[ok] / p[ok][:, None])
            Q[a] = K.R[a, states] + g * (p * ub).reshape(nO, states.size).sum(axis=0)
        new = self.U.corner.copy()
        new[states] = np.minimum(new[states], Q.max(axis=0))
        self.U.set_corner(new)

    def _trial(self, tree: _Tree, root: int, eps: float, max_depth: int,
               deadline: float) -> list[int]:
        """One SARSOP sampling trial from the root; returns the visited nodes (root first)."""
        g = self._K.gamma
        L = tree.lb[root]
        U = L + eps
        i, t = root, 0
        path: list[int] = []
        while True:
            path.append(i)
            if tree.ukey[i] < 0:  # refresh a stale upper bound before judging the node
                u = self.U.value(tree.dense(i, self._S))
                tree.ub[i] = max(min(tree.ub[i], u), tree.lb[i])
            lb, ub = tree.lb[i], tree.ub[i]
            thr = eps * g ** (-t)
            if t >= max_depth or ub - lb <= self._hsvi * thr or (
                    ub <= L and ub <= max(U, lb + thr)):
                break
            if tree.kids[i] is None:
                self._expand(tree, i)
            if time.process_time() >= deadline:
                break
            Qlb, Qub = _arr(tree.Qlb[i]), _arr(tree.Qub[i])
            a = int(Qub.argmax())
            Lp = max(L, float(Qlb[a]))
            Up = max(U, float(Qlb[a]) + thr)
            kids, P = _arr(tree.kids[i])[a], _arr(tree.P[i])[a]
            ok = kids >= 0
            if not ok.any():
                break
            lbk = np.where(ok, tree.lb[np.maximum(kids, 0)], 0.0)
            ubk = np.where(ok, tree.ub[np.maximum(kids, 0)], 0.0)
            score = np.where(ok, P * (ubk - lbk - thr * g ** -1), -np.inf)
            o = int(score.argmax())
            Rb = float(_arr(tree.Rb[i])[a])
            rest_l = float((P * lbk).sum() - P[o] * lbk[o])
            rest_u = float((P * ubk).sum() - P[o] * ubk[o])
            L = (Lp - Rb - g * rest_l) / (g * P[o])
            U = (Up - Rb - g * rest_u) / (g * P[o])
            i = int(kids[o])
            t += 1
        return path

    def _prune(self, tree: _Tree, root: int) -> None:
        """Drop alpha vectors best at no tree belief reachable under non-suboptimal actions."""
        n = len(tree)
        expanded = np.fromiter((k is not None for k in tree.kids), dtype=bool, count=n)
        visited = np.zeros(n, dtype=bool)
        visited[root] = True
        seen = [root]
        stack = [root]
        while stack:
            i = stack.pop()
            kids = tree.kids[i]
            if kids is None:
                continue
            ks = kids[_arr(tree.Qub[i]) >= tree.lb[i] - 1e-12].ravel()
            ks = ks[ks >= 0]
            ks = np.unique(ks[expanded[ks] & ~visited[ks]])
            if ks.size:
                visited[ks] = True
                new = ks.tolist()
                seen.extend(new)
                stack.extend(new)
        rows = np.concatenate([np.full(len(tree.idx[i]), n) for n, i in enumerate(seen)])
        cols = np.concatenate([tree.idx[i] for i in seen])
        vals = np.concatenate([tree.val[i] for i in seen])
        B = sp.csr_matrix((vals, (rows, cols)), shape=(len(seen), self._S))
        best, _ = _kernels.best_alpha_csr(B, self.G.G)
        keep = np.zeros(len(self.G), bool)
        keep[np.unique(best)] = True
        self.G.keep(keep)
