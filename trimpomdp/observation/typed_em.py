"""A TRIM model with a latent problem-difficulty type, fitted by EM from outcome-labelled traces.

Each solution first draws a type z in 1..K (weights ``weights_``); given z it is the TRIM chain of
:mod:`trimpomdp.observation.em` (S0 -> S0 w.p. p_z, else the first wrong step S2, then S1) whose
steps emit o_t = (min of previous scores, score t) from the type's own binned densities
P_z(o | c). The type changes both the weak next-step accuracy and the score densities: a hard
problem's correct steps may score lower than an easy problem's, which one density per class
cannot express. The final answer is correct iff the last class is S0 (epsilon = 0).

EM: the E-step runs the scaled forward-backward of every type on every trace and weighs it by
the type posterior r_z ∝ w_z P(o, y | z); the M-step re-estimates w_z, p_z and P_z(o | c) from the
r-weighted expected counts (additive smoothing ``alpha`` per bin, optional Gaussian kernel
``bandwidth``). Starts: the one-type fit, with types seeded by quantiles of each trace's mean
logit score, plus random perturbations (``n_init``).

Prediction (no outcome): the filtered P(S0 at step t | o_1..t) = Σ_z P(z | o_1..t) α_z,t(S0) at
every step and hence the final P(correct). ``K = 1`` is today's EM model.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trimpomdp._estimator import BaseEstimator
from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.observation.em import (
    _Batch,
    _forward_backward,
    _kde_matrix,
    as_sequences,
    transition_matrix,
)
from trimpomdp.observation.grid import bin_index, grid_size

S0, S1, S2 = 0, 1, 2
#: what a step emits: the TRIM pair (min_prev, current) jointly (today's model), the current
#: score given min_prev (a proper factorisation of the score sequence), or the current score only
EMISSIONS = ("joint", "conditional", "current")
__all__ = ["TypedTrimEM"]


def _logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


class TypedTrimEM(BaseEstimator):
    """Mixture of K TRIM chains (latent problem type), fitted by EM; see the module docstring."""

    _eps0: float = 0.0  # starting / fixed epsilon during a fit
    _eps: float = 0.0  # current epsilon during a fit

    def __init__(self, n_types: int = 2, bin_size: float = 0.05, alpha: float = 0.1,
                 bandwidth: float = 0.0, n_init: int = 3, max_iter: int = 300,
                 tol: float = 1e-7, random_state: int | None = 0, emission: str = "joint",
                 learn_epsilon: bool = False, epsilon: float = 0.0) -> None:
        self.n_types = n_types
        self.learn_epsilon = learn_epsilon
        self.epsilon = epsilon
        self.emission = emission
        self.bin_size = bin_size
        self.alpha = alpha
        self.bandwidth = bandwidth
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------
    def _check(self) -> int:
        if isinstance(self.n_types, bool) or not isinstance(self.n_types, int | np.integer) \
                or self.n_types < 1:
            raise InputError(f"n_types must be an int >= 1. Got {self.n_types!r} instead.",
                             field="n_types")
        if self.emission not in EMISSIONS:
            raise InputError(f"emission must be one of {EMISSIONS}. Got {self.emission!r} "
                             "instead.", field="emission")
        if not (self.alpha >= 0 and self.bandwidth >= 0):
            raise InputError("alpha and bandwidth must be >= 0.", field="alpha")
        return grid_size(self.bin_size)

    def _smooth(self, counts: np.ndarray, k: int) -> np.ndarray:
        K = _kde_matrix(k, float(self.bandwidth))
        out = np.stack([(K.T @ c.reshape(k, k) @ K) for c in counts]) + float(self.alpha)
        if self.emission == "joint":
            out /= out.sum(axis=(1, 2), keepdims=True)
        elif self.emission == "conditional":  # P(current bin | min_prev bin, c)
            out /= out.sum(axis=2, keepdims=True)
        else:  # "current": P(current bin | c), the same for every min_prev bin
            cur = out.sum(axis=1, keepdims=True)
            out = np.broadcast_to(cur / cur.sum(axis=2, keepdims=True), out.shape).copy()
        return out.reshape(out.shape[0], k * k)

    def _estep(self, batch: _Batch, probs: np.ndarray, p: np.ndarray, w: np.ndarray
               ) -> tuple[list[np.ndarray], np.ndarray, float]:
        G, ll, last = [], [], []
        with np.errstate(divide="ignore"):
            for z in range(w.size):
                g, lz, lastz = _forward_backward(batch, probs[z], float(p[z]), self._eps)
                G.append(np.concatenate(g))
                ll.append(lz + np.log(w[z]))
                last.append(lastz)
        L = np.stack(ll)  # (K, n)
        tot = _logsumexp(L, 0)
        r = np.exp(L - tot[None, :])
        if self.learn_epsilon:  # P(correct answer | an error occurred), r-weighted
            known = ~np.isnan(batch.y)
            err = np.stack([1.0 - lz[:, S0] for lz in last]) * r  # (K, n)
            num = (err[:, known] * batch.y[known][None, :]).sum()
            self._eps = float(np.clip(num / max(err[:, known].sum(), 1e-300), 1e-6, 1 - 1e-6))
        return G, r, float(tot.sum())

    def _mstep(self, batch: _Batch, G: list[np.ndarray], r: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        K = r.shape[0]
        probs = np.empty((K, 3, k * k))
        p = np.empty(K)
        for z in range(K):
            wz = r[z][batch.flat_trace]
            Gz = G[z] * wz[:, None]
            counts = np.stack([np.bincount(batch.flat_bins, weights=Gz[:, c], minlength=k * k)
                               for c in range(3)])
            probs[z] = self._smooth(counts, k)
            g0, g2 = Gz[:, S0].sum(), Gz[:, S2].sum()
            p[z] = float(np.clip(g0 / max(g0 + g2, 1e-300), 1e-6, 1 - 1e-6))
        w = np.clip(r.mean(axis=1), 1e-6, None)
        return probs, p, w / w.sum()

    def _run(self, batch: _Batch, k: int, r: np.ndarray, G0: np.ndarray) -> dict[str, Any]:
        """EM from type responsibilities ``r`` (K, n) and class posteriors ``G0`` (steps, 3)."""
        n_steps = int(batch.lengths.sum())
        hist: list[float] = []
        self._eps = self._eps0
        G = [G0] * r.shape[0]
        probs = p = w = None
        for it in range(int(self.max_iter)):
            probs, p, w = self._mstep(batch, G, r, k)
            G, r, ll = self._estep(batch, probs, p, w)
            hist.append(ll)
            if it > 0 and abs(hist[-1] - hist[-2]) / n_steps < float(self.tol):
                break
        return {"probs": probs, "p": p, "w": w, "hist": hist, "G": G, "eps": self._eps}

    def _crude_posteriors(self, batch: _Batch, k: int) -> np.ndarray:
        """Class posteriors under one density shared by all classes: the outcome and the chain
        alone place each wrong trace's first error (a neutral start for the one-type fit)."""
        dens = np.full((3, k * k), 1.0 / (k * k))
        with np.errstate(divide="ignore"):
            g, _, _ = _forward_backward(batch, dens, 0.9, 0.0)
        return np.concatenate(g)

    def fit(self, X: Any, y: Any = None) -> TypedTrimEM:
        """Fit from step traces (outcomes from ``correct``) or observation arrays + ``y``."""
        k = self._check()
        seqs, yy = as_sequences(X, y)
        known = yy[~np.isnan(yy)]
        if not (np.any(known == 1) and np.any(known == 0)):
            raise InputError("y must contain both correct and wrong final answers.",
                             field="correct")
        batch = _Batch(seqs, yy, self.bin_size)
        K = int(self.n_types)
        self._eps0 = float(self.epsilon)
        if self.learn_epsilon and self._eps0 == 0.0:
            self._eps0 = 0.05
        # seed types by quantiles of each trace's mean logit score (sorted order of the batch)
        cur = [np.clip(seqs[i][:, 1], 1e-4, 1 - 1e-4) for i in batch.order]
        m = np.array([np.mean(np.log(c) - np.log1p(-c)) for c in cur])
        q = np.argsort(np.argsort(m)) / max(m.size - 1, 1)
        rng = np.random.default_rng(self.random_state)
        one = self._run(batch, k, np.ones((1, batch.n)), self._crude_posteriors(batch, k))
        self.one_type_loglik_ = float(one["hist"][-1])
        if K == 1:
            best = one
        else:
            best = None
            for s in range(max(int(self.n_init), 1)):
                centres = (np.arange(K) + 0.5) / K
                logits = -((q[None, :] - centres[:, None]) ** 2) / (0.5 / K) ** 2
                if s > 0:
                    logits = logits + rng.normal(0, 1.0, logits.shape)
                r = np.exp(logits - _logsumexp(logits, 0)[None, :])
                res = self._run(batch, k, r, one["G"][0])
                if best is None or res["hist"][-1] > best["hist"][-1]:
                    best = res
        assert best is not None
        self.epsilon_ = float(best.get("eps", self._eps))
        self.probs_ = best["probs"]
        self.p_ = best["p"]
        self.weights_ = best["w"]
        self.loglik_history_ = np.asarray(best["hist"])
        self.lower_bound_ = float(best["hist"][-1])
        self.n_traces_ = batch.n
        self.n_steps_ = int(batch.lengths.sum())
        return self

    # ------------------------------------------------------------------------------------------
    def _fitted(self) -> None:
        if not hasattr(self, "probs_"):
            raise NotFittedError("TypedTrimEM is not fitted yet; call fit first.")

    def filter(self, seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Filtered P(S0 at step t | o_1..t) of each observation sequence (L_i,)."""
        self._fitted()
        K = self.weights_.size
        k = grid_size(self.bin_size)
        out = []
        lens = np.array([len(s) for s in seqs])
        T = int(lens.max())
        n = len(seqs)
        bins = np.zeros((n, T), dtype=np.intp)
        for i, s in enumerate(seqs):
            bins[i, :len(s)] = bin_index(np.asarray(s, float), self.bin_size)
        del k
        logw = np.tile(np.log(self.weights_)[:, None], (1, n))  # log P(z, o_1..t) up to scale
        a = np.zeros((K, n, 3))
        P = np.full((n, T), np.nan)
        for t in range(T):
            live = lens > t
            for z in range(K):
                A = transition_matrix(float(self.p_[z]))
                pred = (np.broadcast_to(np.array([self.p_[z], 0.0, 1.0 - self.p_[z]]), (n, 3))
                        if t == 0 else a[z] @ A)
                lik = self.probs_[z][:, bins[:, t]].T
                post = pred * lik
                c = post.sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    a_new = post / c[:, None]
                ok = live & (c > 0)
                a[z] = np.where(ok[:, None], a_new, a[z])
                logw[z] = np.where(live, logw[z] + np.log(np.where(c > 0, c, 1e-300)), logw[z])
            rz = np.exp(logw - _logsumexp(logw, 0)[None, :])
            P[live, t] = (rz[:, live] * a[:, live, S0]).sum(axis=0)
        for i in range(n):
            out.append(P[i, :lens[i]])
        return out

    def predict_correct(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """P(correct answer | all observations) = ε + (1 − ε) × final filtered P(S0)."""
        e = self.epsilon_
        return e + (1.0 - e) * np.array([f[-1] for f in self.filter(seqs)])

    def trace_log_likelihood(self, seqs: Sequence[np.ndarray], y: Any) -> np.ndarray:
        """log P(binned observations, outcome) of each trace (the mixture over types)."""
        self._fitted()
        seqs_, yy = as_sequences(list(seqs), y)
        batch = _Batch(seqs_, yy, self.bin_size)
        with np.errstate(divide="ignore"):
            L = np.stack([_forward_backward(batch, self.probs_[z], float(self.p_[z]),
                                            self.epsilon_)[1]
                          + np.log(self.weights_[z]) for z in range(self.weights_.size)])
        out = np.empty(batch.n)
        out[batch.order] = _logsumexp(L, 0)
        return out
