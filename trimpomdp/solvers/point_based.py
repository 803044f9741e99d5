"""Point-based value iteration (PBVI, Perseus) for any discrete POMDP, vectorised over beliefs.

PBVI (Pineau et al. 2003) backs up every point of a belief set grown by greedy expansion;
Perseus (Spaan & Vlassis 2005) backs up random points until each point has improved. With
``horizon=H`` and the reachable belief set, the backups are exact finite-horizon values at b0.
"""
from __future__ import annotations

import time

import numpy as np

from trimpomdp._validate import nonneg_float
from trimpomdp.errors import InputError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers.bounds import PreparedPOMDP, blind_alphas, fib_values, single_threaded_blas
from trimpomdp.solvers.info import SolveInfo

METHODS = ("pbvi", "perseus")


def _dedupe(B: np.ndarray, decimals: int = 10) -> np.ndarray:
    _, keep = np.unique(np.round(B, decimals), axis=0, return_index=True)
    return B[np.sort(keep)]


def reachable_beliefs(pomdp: TabularPOMDP, depth: int, *, max_beliefs: int = 100_000,
                      p_min: float = 1e-12) -> np.ndarray:
    """Every distinct belief reachable from b0 in at most ``depth`` steps (rows of an array).

    Used as the belief set for exact finite-horizon point-based backups on small models.
    """
    K = PreparedPOMDP(pomdp)
    layer = K.b0[None, :]
    out = [layer]
    for _ in range(depth):
        nxt = []
        for b in layer:
            P, J = K.successors(b)
            ok = P > p_min
            nxt.append(J[ok] / P[ok][:, None])
        layer = _dedupe(np.vstack(nxt))
        out.append(layer)
        if sum(x.shape[0] for x in out) > max_beliefs:
            raise InputError(f"more than {max_beliefs} reachable beliefs at depth {depth}; "
                             "use a smaller depth.", field="depth")
    return _dedupe(np.vstack(out))


def backup_many(K: PreparedPOMDP, G: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point-based Bellman backup of the alpha set ``G`` at every row of ``B``.

    Returns the new alpha vectors (n, S) and their actions (n,), one per belief.
    """
    n, g = B.shape[0], K.gamma
    best_val = np.full(n, -np.inf)
    best_alpha = np.empty((n, K.S))
    best_act = np.zeros(n, dtype=np.int64)
    for a in range(K.A):
        pred = (K.Tt[a] @ B.T).T if not K.sparse else np.asarray((K.Tt[a] @ B.T).T)
        W = np.zeros((n, K.S))
        for o in range(K.nO):
            Jo = pred * K.O[a][:, o][None, :]          # (n, S) unnormalised successors
            sel = (Jo @ G.T).argmax(axis=1)           # best vector per belief
            W += G[sel] * K.O[a][:, o][None, :]
        alpha = K.R[a][None, :] + g * np.asarray((K.T[a] @ W.T).T)
        val = np.einsum("ij,ij->i", alpha, B)
        better = val > best_val
        best_val[better] = val[better]
        best_alpha[better] = alpha[better]
        best_act[better] = a
    return best_alpha, best_act


class PointBasedSolver:
    """PBVI / Perseus: ``solve(pomdp) -> AlphaVectorPolicy``, ``solve_info`` adds a SolveInfo.

    ``beliefs``: an explicit belief set (rows), else ``n_beliefs`` sampled from b0 (Perseus:
    random walks; PBVI: greedy expansion). ``horizon``: exact H-step backups from zero instead of
    iterating to ``tol`` from the blind lower bound. ``timeout`` is in CPU seconds.
    """

    def __init__(self, *, method: str = "perseus", n_beliefs: int = 500,
                 beliefs: np.ndarray | None = None, horizon: int | None = None,
                 max_iterations: int = 1000, tol: float = 1e-4, timeout: float = 60.0,
                 seed: int = 0) -> None:
        if method not in METHODS:
            raise InputError(f"The 'method' parameter of PointBasedSolver must be one of "
                             f"{METHODS}. Got {method!r} instead.", field="method")
        if horizon is not None and (isinstance(horizon, bool) or int(horizon) < 0):
            raise InputError(f"The 'horizon' parameter must be a non-negative integer or None. "
                             f"Got {horizon!r} instead.", field="horizon")
        self.method = method
        self.n_beliefs = int(n_beliefs)
        self.beliefs = beliefs
        self.horizon = horizon
        self.max_iterations = int(max_iterations)
        self.tol = nonneg_float(tol, "tol")
        self.timeout = nonneg_float(timeout, "timeout", strict=True)
        self.seed = seed

    def solve(self, pomdp: TabularPOMDP) -> AlphaVectorPolicy:
        """Solve and return the policy."""
        return self.solve_info(pomdp)[0]

    # ------------------------------------------------------------------------------------------
    def _random_beliefs(self, K: PreparedPOMDP, rng: np.random.Generator) -> np.ndarray:
        """Up to ``n_beliefs`` distinct beliefs met on random walks from b0 (Perseus)."""
        out = [K.b0]
        seen = {np.round(K.b0, 9).tobytes()}
        b = K.b0
        for _ in range(50 * self.n_beliefs):
            if len(out) >= self.n_beliefs:
                break
            a = int(rng.integers(K.A))
            P, J = K.successors(b)
            p = P[a] / P[a].sum()
            o = int(rng.choice(K.nO, p=p))
            b = J[a, o] / P[a, o]
            key = np.round(b, 9).tobytes()
            if key not in seen:
                seen.add(key)
                out.append(b)
            if rng.random() < 0.02:
                b = K.b0
        return np.vstack(out)

    def _pbvi_expand(self, K: PreparedPOMDP, B: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        new: list[np.ndarray] = []
        for b in B:
            P, J = K.successors(b)
            ok = P > 1e-12
            cand = J[ok] / P[ok][:, None]
            dist = np.abs(cand[:, None, :] - np.vstack([B] + new)[None, :, :]).sum(2).min(1)
            k = int(dist.argmax())
            if dist[k] > 1e-9:
                new.append(cand[k][None, :])
        return B if not new else np.vstack([B] + new)

    def solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        """Solve ``pomdp``; returns (policy, info). ``info.upper`` is the FIB bound at b0."""
        with single_threaded_blas():
            return self._solve_info(pomdp)

    def _solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        t0 = time.process_time()
        deadline = t0 + self.timeout
        rng = np.random.default_rng(self.seed)
        K = PreparedPOMDP(pomdp)
        if K.gamma >= 1.0 and self.horizon is None:
            raise InputError(f"PointBasedSolver ({self.method}) needs a discount < 1, or a "
                             "finite horizon= for exact H-step backups. Got 1.0 instead.",
                             field="discount")
        if self.beliefs is not None:
            B = np.asarray(self.beliefs, dtype=float)
            if B.ndim != 2 or B.shape[1] != K.S:
                raise InputError(f"beliefs must be an (n, {K.S}) array. Got shape {B.shape} "
                                 "instead.", field="beliefs")
        elif self.method == "perseus":
            B = self._random_beliefs(K, rng)
        else:
            B = K.b0[None, :]
        trace = []
        backups = 0
        it = 0
        if self.horizon is not None:
            G, acts = np.zeros((1, K.S)), np.zeros(1, dtype=np.int64)
            for it in range(1, self.horizon + 1):
                G, acts = backup_many(K, G, B)
                backups += B.shape[0]
                keep = np.unique(np.round(G, 12), axis=0, return_index=True)[1]
                G, acts = G[keep], acts[keep]
            upper = float((G @ K.b0).max())
        else:
            G, acts = blind_alphas(K), np.arange(K.A)
            upper = float((fib_values(K, max_seconds=0.2 * self.timeout) @ K.b0).max())
            for it in range(1, self.max_iterations + 1):
                grew = False
                if self.method == "pbvi" and self.beliefs is None and B.shape[0] < self.n_beliefs:
                    n0 = B.shape[0]
                    B = self._pbvi_expand(K, B, rng)[: self.n_beliefs]
                    grew = B.shape[0] > n0
                old = (B @ G.T).max(axis=1)
                if self.method == "pbvi":
                    Gn, an = backup_many(K, G, B)
                    backups += B.shape[0]
                else:
                    Gn, an, nb = self._perseus_stage(K, G, acts, B, old, rng, deadline)
                    backups += nb
                keep = np.unique(np.round(Gn, 12), axis=0, return_index=True)[1]
                G, acts = Gn[keep], an[keep]
                new = (B @ G.T).max(axis=1)
                trace.append((time.process_time() - t0, float((G @ K.b0).max()), upper))
                if time.process_time() >= deadline:
                    break
                if float(np.max(new - old)) < self.tol and not grew:
                    # converged unless a full backup of every point still improves one
                    Gf, af = backup_many(K, G, B)
                    backups += B.shape[0]
                    if float(np.max((B @ Gf.T).max(axis=1) - new)) < self.tol:
                        break
                    G, acts = np.vstack([G, Gf]), np.concatenate([acts, af])
                    keep = np.unique(np.round(G, 12), axis=0, return_index=True)[1]
                    G, acts = G[keep], acts[keep]
        lower = float((G @ K.b0).max())
        secs = time.process_time() - t0
        trace.append((secs, lower, upper))
        pol = AlphaVectorPolicy(alphas=G, actions=acts, pomdp=pomdp,
                                meta={"solver": self.method, "lower": lower, "upper": upper})
        return pol, SolveInfo(seconds=secs, iterations=it, backups=backups, n_alpha=G.shape[0],
                              lower=lower, upper=upper, gap_trace=tuple(trace),
                              solver=self.method, converged=self.horizon is not None,
                              extra={"beliefs": int(B.shape[0])})

    def _perseus_stage(self, K: PreparedPOMDP, G: np.ndarray, acts: np.ndarray, B: np.ndarray,
                       old: np.ndarray, rng: np.random.Generator,
                       deadline: float) -> tuple[np.ndarray, np.ndarray, int]:
        """One Perseus stage: back up random unimproved beliefs until all have improved."""
        todo = np.ones(B.shape[0], bool)
        newG: list[np.ndarray] = []
        newA: list[int] = []
        cur = np.full(B.shape[0], -np.inf)
        nb = 0
        while todo.any():
            i = int(rng.choice(np.flatnonzero(todo)))
            alphas, acts1 = backup_many(K, G, B[i:i + 1])
            nb += 1
            alpha, a = alphas[0], int(acts1[0])
            if alpha @ B[i] < old[i]:
                k = int((G @ B[i]).argmax())
                alpha, a = G[k], int(acts[k])
            newG.append(alpha)
            newA.append(a)
            cur = np.maximum(cur, B @ alpha)
            todo &= cur < old - 1e-12
            if time.process_time() >= deadline:
                break
        # beliefs not reached before the deadline keep their old best vectors
        rest = np.flatnonzero(cur < old)
        if rest.size:
            ks = np.unique((B[rest] @ G.T).argmax(axis=1))
            newG.extend(G[ks])
            newA.extend(acts[ks].tolist())
        return np.vstack(newG), np.asarray(newA, dtype=np.int64), nb
