"""P(o | c) and the next-step accuracy fitted by EM from outcome-labelled traces (no step labels).

Each trace is a chain of hidden classes S0 -> S2 -> S1: a step in S0 is followed by S0 w.p. p (the
next-step accuracy) and otherwise by the first wrong step S2; S2 is followed by S1, which is
absorbing. The step before the first one is S0 (the empty prefix is correct). Step t emits the
TRIM observation o_t = (min of previous scores, score t) from P(o | c_t) on a square grid, and the
final answer's correctness is an emission of the last class: P(correct | S0) = 1 and
P(correct | S1) = P(correct | S2) = epsilon (0 by default, or learned).

Identifiability: the three classes are not exchangeable as in a plain mixture. With epsilon = 0 a
correct answer forces every step to S0 (those traces are fully labelled S0), a wrong answer forces
exactly one S2 step (the first error) and S1 for every later step. The chain structure (S2 occurs
once, S1 only after it) and the outcome emission therefore pin the labels; EM only has to locate
the first error of each wrong trace. A learned epsilon loosens the first constraint, so it is off
by default.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from trimpomdp._io import envelope, write_json
from trimpomdp._validate import nonneg_float, unit_float
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError
from trimpomdp.observation.base import N_CLASSES, BaseObservationModel, check_X, grid_size
from trimpomdp.observation.binned import BinnedObservationModel, _BinnedDensity, bin_index
from trimpomdp.observation.features import observation_sequence
from trimpomdp.pomdp.dynamics import continue_transition, regenerate_transition

S0, S1, S2 = 0, 1, 2
__all__ = [
    "BANDWIDTH_GRID",
    "LatentClassObservationModel",
    "RoutedTrimEM",
    "as_sequences",
    "fit_accuracy",
    "routed_log_likelihood",
    "simulate_outcome_traces",
    "step_labels",
    "trace_log_likelihood",
    "transition_matrix",
]

Callback = Callable[[int, int, float], None]
#: candidate kernel bandwidths (score units; 0 = plain histogram) for ``bandwidth="cv"``
BANDWIDTH_GRID = (0.0, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05)


def transition_matrix(p: float) -> np.ndarray:
    """A[c, c'] of the uncontrolled chain (continue only): S0 -> S0 | S2, S2 -> S1, S1 -> S1."""
    return continue_transition(p)


def outcome_likelihood(y: np.ndarray, epsilon: float) -> np.ndarray:
    """P(final outcome | last class), shape (n, 3); y is 1 correct, 0 wrong, NaN unknown."""
    q = np.ones((y.shape[0], N_CLASSES))
    corr, wrong = y == 1, y == 0
    q[corr] = (1.0, epsilon, epsilon)
    q[wrong] = (0.0, 1.0 - epsilon, 1.0 - epsilon)
    return q


class _Batch:
    """Traces binned and sorted by length (longest first), so step t is the prefix [:n_t].

    Routed traces also carry each step's action (0 continue, 1 regenerate: the transition out
    of that step) and optional per-step evidence factors on the class (from step labels).
    """

    def __init__(self, seqs: list[np.ndarray], y: np.ndarray, bin_size: float,
                 actions: list[np.ndarray] | None = None,
                 labels: list[np.ndarray | None] | None = None) -> None:
        lengths = np.array([len(s) for s in seqs])
        self.order = np.argsort(-lengths, kind="stable")
        self.lengths = lengths[self.order]
        self.y = y[self.order]
        self.n_active = np.array([(self.lengths > t).sum() for t in range(self.lengths[0])])
        bins = [bin_index(seqs[i], bin_size) for i in self.order]
        self.bins = [np.array([b[t] for b in bins[:n]], dtype=np.intp)
                     for t, n in enumerate(self.n_active)]
        self.flat_bins = np.concatenate(self.bins)
        self.flat_trace = np.concatenate([np.arange(n) for n in self.n_active])
        self.flat_y = self.y[self.flat_trace]
        #: draft-score bins (set for the 1-D "score" emission of RoutedTrimEM)
        self.score_bins: list[np.ndarray] = []
        self.flat_score_bins = np.empty(0, dtype=np.intp)
        self.acts: list[np.ndarray] | None = None
        self.last_act = np.zeros(self.n, dtype=np.int8)
        if actions is not None and any(np.any(a) for a in actions):
            acts = [np.asarray(actions[i], dtype=np.int8) for i in self.order]
            self.acts = [np.array([a[t] for a in acts[:n]], dtype=np.int8)
                         for t, n in enumerate(self.n_active)]
            self.last_act = np.array([a[-1] for a in acts], dtype=np.int8)
        self.labs: list[np.ndarray] | None = None
        if labels is not None and any(e is not None for e in labels):
            labs = [np.full(len(seqs[i]), -1, dtype=np.int8) if labels[i] is None
                    else np.asarray(labels[i], dtype=np.int8) for i in self.order]
            self.labs = [np.array([e[t] for e in labs[:n]], dtype=np.int8)
                         for t, n in enumerate(self.n_active)]
            self.flat_labs = np.concatenate(self.labs)

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])


def _predict(prev: np.ndarray, A: np.ndarray, R: np.ndarray | None, act: np.ndarray | None
             ) -> np.ndarray:
    """P(c_{t+1}) rows from P(c_t) rows: continue (A) or, where ``act`` is 1, regenerate (R)."""
    out = prev @ A
    if R is not None and act is not None:
        m = act.astype(bool)
        if m.any():
            out[m] = prev[m] @ R
    return out


def _pull_back(w: np.ndarray, A: np.ndarray, R: np.ndarray | None, act: np.ndarray | None
               ) -> np.ndarray:
    """Backward message sum_c' T_a[c, c'] w[c'] per row, with a = ``act`` (0 where None)."""
    out = w @ A.T
    if R is not None and act is not None:
        m = act.astype(bool)
        if m.any():
            out[m] = w[m] @ R.T
    return out


def _label_factors(labs: np.ndarray, q: float) -> np.ndarray:
    """P(step label | class) rows: label 1 (draft right) -> (1, q, 0), 0 -> (0, 1 - q, 1),
    none (-1) -> 1; q = P(a draft after an earlier error is rated right)."""
    f = np.ones((labs.shape[0], N_CLASSES))
    f[labs == 1] = (1.0, q, 0.0)
    f[labs == 0] = (0.0, 1.0 - q, 1.0)
    return f


def _forward_backward(batch: _Batch, probs: np.ndarray, p: float, epsilon: float,
                      p_strong: float | None = None, q_s1: float = 0.5
                      ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Scaled forward-backward on every trace at once.

    Returns the posteriors gamma_t (list over t of (n_t, 3)), the log-likelihood of each trace
    (sorted order) and the posterior of each trace's last class (n, 3). With routed traces
    (``batch.acts``) the transition out of step t is the TRIM one of its action (needs
    ``p_strong``), and a final regenerated step is correct w.p. ``p_strong`` from S0 or S2.
    """
    A = transition_matrix(p)
    routed = batch.acts is not None
    R = regenerate_transition(p, p_strong) if routed and p_strong is not None else None
    if routed and R is None:
        raise InputError("p_strong is needed for traces with regenerated steps.")
    q = outcome_likelihood(batch.y, epsilon)
    if routed and batch.last_act.any():
        ps = float(p_strong)  # type: ignore[arg-type]
        m = batch.last_act.astype(bool)
        good = ps + (1.0 - ps) * epsilon
        corr, wrong = m & (batch.y == 1), m & (batch.y == 0)
        q[corr] = (good, epsilon, good)
        q[wrong] = (1.0 - good, 1.0 - epsilon, 1.0 - good)
    T = len(batch.n_active)
    acts = batch.acts
    ev = None if batch.labs is None else [_label_factors(lab, q_s1) for lab in batch.labs]

    def emit(t: int, n_t: int) -> np.ndarray:
        e = probs[:, batch.bins[t]].T
        return e if ev is None else e * ev[t][:n_t]

    alphas: list[np.ndarray] = []
    scales: list[np.ndarray] = []
    loglik = np.zeros(batch.n)
    prev = np.broadcast_to(np.array([p, 0.0, 1.0 - p]), (batch.n, N_CLASSES))
    for t in range(T):
        n_t = batch.n_active[t]
        if t == 0:
            a = prev[:n_t] * emit(t, n_t)
        else:
            a = _predict(prev[:n_t], A, R, None if acts is None else acts[t - 1][:n_t])
            a *= emit(t, n_t)
        c = a.sum(axis=1)
        a /= c[:, None]
        loglik[:n_t] += np.log(c)
        alphas.append(a)
        scales.append(c)
        prev = a
    # outcome emission at each trace's last step, then backward pass
    gammas: list[np.ndarray] = [None] * T  # type: ignore[list-item]
    beta = np.empty((0, N_CLASSES))
    last = np.empty((batch.n, N_CLASSES))
    for t in range(T - 1, -1, -1):
        n_t, n_next = batch.n_active[t], (batch.n_active[t + 1] if t + 1 < T else 0)
        b = np.empty((n_t, N_CLASSES))
        if n_next:
            w = emit(t + 1, n_next) * beta
            b[:n_next] = _pull_back(w, A, R, None if acts is None else acts[t][:n_next]) \
                / scales[t + 1][:, None]
        b[n_next:] = q[n_next:n_t]
        g = alphas[t] * b
        s = g.sum(axis=1)
        if n_t > n_next:
            loglik[n_next:n_t] += np.log(s[n_next:])
            last[n_next:n_t] = g[n_next:] / s[n_next:, None]
        gammas[t] = g / s[:, None]
        beta = b
    return gammas, loglik, last


def _kde_matrix(k: int, bandwidth: float) -> np.ndarray:
    """K[j, l]: mass in bin l of a Gaussian at bin centre j, reflected at 0 and 1 (I if 0)."""
    if bandwidth <= 0:
        return np.eye(k)
    edges = np.linspace(0.0, 1.0, k + 1)
    x = (np.arange(k) + 0.5) / k
    K = np.zeros((k, k))
    for img in (x, -x, 2.0 - x):
        K += np.diff(ndtr((edges[None, :] - img[:, None]) / bandwidth), axis=1)
    return K / K.sum(axis=1, keepdims=True)


def as_sequences(X: Any, y: Any = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Observation sequences and outcomes (1 correct, 0 wrong, NaN unknown) from ``X``.

    ``X`` is a sequence of :class:`StepTrace` (outcomes from ``correct`` unless ``y`` is given)
    or of observation arrays of shape (n_i, 2) (then ``y`` is required); an array of shape
    (n_traces, length, 2) is taken as equal-length traces.
    """
    if isinstance(X, np.ndarray) and X.ndim == 3:
        X = list(X)
    if isinstance(X, (str, bytes)) or not isinstance(X, Sequence) or len(X) == 0:
        raise InputError(f"X must be a non-empty list of step traces or observation arrays. "
                         f"Got {type(X).__name__} instead.")
    if all(isinstance(tr, StepTrace) for tr in X):
        seqs = [observation_sequence(tr.scores) for tr in X]
        if y is None:
            y = [tr.correct for tr in X]
    else:
        seqs = []
        for i, s in enumerate(X):
            arr = check_X(s, f"X[{i}]")
            if arr.shape[0] == 0:
                raise InputError(f"X[{i}] must hold at least one step. Got 0 instead.")
            seqs.append(arr)
        if y is None:
            raise InputError("y must give each trace's final-answer correctness when X holds "
                             "observation arrays. Got None instead.")
    if len(y) != len(seqs):
        raise InputError(f"y must have one outcome per trace ({len(seqs)}). Got {len(y)} instead.")
    out = np.empty(len(seqs))
    for i, v in enumerate(y):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out[i] = np.nan
        elif isinstance(v, (bool, np.bool_)) or v in (0, 1):
            out[i] = float(bool(v))
        else:
            raise InputError(f"y[{i}] must be true, false (or 1/0) or None. Got {v!r} instead.")
    return seqs, out


class LatentClassObservationModel(_BinnedDensity, BaseObservationModel):
    """Binned P(o | c) and next-step accuracy p fitted by EM from final-answer outcomes.

    Parameters
    ----------
    bin_size : float
        Grid of the observation bins (0.05 = the release's 400 bins).
    alpha : float
        Pseudo-count added to every bin of every class in each M-step (histogram M-step).
    m_step : {"histogram", "kde"}
        "kde" smooths each class's expected counts with a Gaussian kernel (score units),
        reflected at the borders of the unit square (a binned reflected KDE).
    bandwidth : float, 3 floats, (3, 2) floats or "cv"
        Kernel standard deviation for ``m_step="kde"``: one for all, one per class (S0, S1, S2)
        or one per class and axis (min_prev, current); 0 = no smoothing. "cv" picks them from
        ``BANDWIDTH_GRID`` by 5-fold held-out likelihood (``bandwidth_``, ``cv_scores_``).
    learn_epsilon : bool
        Learn epsilon = P(correct answer | last class S1 or S2); else keep it at ``epsilon``.
    epsilon : float
        Fixed value (or starting value, if learned) of epsilon.
    n_init : int
        Random restarts; the one with the highest log-likelihood is kept.
    max_iter, tol : int, float
        EM stops after ``max_iter`` iterations or when the mean log-likelihood per step changes
        by less than ``tol``.
    random_state : int or None
        Seed of the restarts.
    """

    def __init__(self, bin_size: float = 0.05, alpha: float = 0.1, m_step: str = "histogram",
                 bandwidth: Any = "cv", learn_epsilon: bool = False, epsilon: float = 0.0,
                 n_init: int = 8, max_iter: int = 500, tol: float = 1e-7,
                 random_state: int | None = 0) -> None:
        self.bin_size = bin_size
        self.alpha = alpha
        self.m_step = m_step
        self.bandwidth = bandwidth
        self.learn_epsilon = learn_epsilon
        self.epsilon = epsilon
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # -- validation -------------------------------------------------------------------------
    def _check_params(self) -> int:
        k = grid_size(self.bin_size)
        nonneg_float(self.alpha, "alpha")
        if self.m_step not in ("histogram", "kde"):
            raise InputError(f"The 'm_step' parameter of {type(self).__name__} must be "
                             f"'histogram' or 'kde'. Got {self.m_step!r} instead.")
        eps = unit_float(self.epsilon, "epsilon")
        if eps >= 1.0:
            raise InputError(f"The 'epsilon' parameter must be in [0, 1). Got {eps!r} instead.")
        if self.learn_epsilon and eps == 0.0:
            raise InputError("The 'epsilon' parameter must be > 0 when learn_epsilon=True (it "
                             "is the starting value; EM keeps 0 fixed). Got 0 instead.")
        for name in ("n_init", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"The '{name}' parameter of {type(self).__name__} must be an "
                                 f"int >= 1. Got {v!r} instead.")
        nonneg_float(self.tol, "tol")
        return k

    # -- EM ----------------------------------------------------------------------------------
    def _smooth(self, counts: np.ndarray, k: int, bws: np.ndarray) -> np.ndarray:
        """M-step: expected counts per (class, bin) -> P(bin | class), kernel-smoothed per axis."""
        out = np.empty_like(counts)
        for c in range(N_CLASSES):
            Kx, Ky = (_kde_matrix(k, float(b)) for b in bws[c])
            out[c] = (Kx.T @ counts[c].reshape(k, k) @ Ky).ravel()
        out = out + float(self.alpha)
        s = out.sum(axis=1, keepdims=True)
        return np.divide(out, s, out=np.full_like(out, 1.0 / out.shape[1]), where=s > 0)

    def _init(self, batch: _Batch, k: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, float, float]:
        """Outcome-informed start: S0 from correct traces, S1/S2 from wrong ones, with noise."""
        n_bins = k * k
        good = np.bincount(batch.flat_bins[batch.flat_y == 1], minlength=n_bins) + 1.0
        rest = np.bincount(batch.flat_bins[batch.flat_y != 1], minlength=n_bins) + 1.0
        probs = np.stack([good, rest, rest]) * rng.gamma(1.0, size=(N_CLASSES, n_bins))
        probs /= probs.sum(axis=1, keepdims=True)
        p = float(rng.uniform(0.7, 0.99))
        eps = float(rng.uniform(0.01, 0.2)) if self.learn_epsilon else float(self.epsilon)
        return probs, p, eps

    def _em(self, batch: _Batch, k: int, probs: np.ndarray, p: float, eps: float,
            bws: np.ndarray, restart: int, callback: Callback | None) -> dict[str, Any]:
        """EM iterations from one starting point until ``tol`` or ``max_iter``."""
        n_steps = int(batch.lengths.sum())
        hist: list[float] = []
        converged = False
        G = np.empty((0, N_CLASSES))
        for it in range(int(self.max_iter)):
            gammas, ll, last = _forward_backward(batch, probs, p, eps)
            G = np.concatenate(gammas)
            hist.append(float(ll.sum()))
            if callback is not None:
                callback(restart, it, hist[-1])
            if it > 0 and abs(hist[-1] - hist[-2]) / n_steps < float(self.tol):
                converged = True
                break
            counts = np.stack([np.bincount(batch.flat_bins, weights=G[:, c], minlength=k * k)
                               for c in range(N_CLASSES)])
            probs = self._smooth(counts, k, bws)
            g0, g2 = G[:, S0].sum(), G[:, S2].sum()
            p = float(g0 / (g0 + g2))
            if self.learn_epsilon:
                m = ~np.isnan(batch.y)
                err = 1.0 - last[m, S0]
                eps = float(np.clip((batch.y[m] * err).sum() / max(err.sum(), 1e-300),
                                    1e-9, 1 - 1e-9))
        return {"probs": probs, "p": p, "eps": eps, "hist": hist, "conv": converged, "G": G}

    def _cv_bandwidths(self, batch: _Batch, G: np.ndarray, k: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-class, per-axis bandwidths maximising the 5-fold (by trace) held-out likelihood.

        The held-out log-likelihood of each class's observations is weighted by the E-step
        posteriors, so no labels are needed.
        """
        grid = np.asarray(BANDWIDTH_GRID)
        m = grid.size
        Ks = [_kde_matrix(k, float(b)) for b in grid]
        fold = rng.integers(0, 5, size=batch.n)[batch.flat_trace]
        scores = np.zeros((N_CLASSES, m, m))
        for f in range(5):
            tr, te = fold != f, fold == f
            for c in range(N_CLASSES):
                train = np.bincount(batch.flat_bins[tr], weights=G[tr, c], minlength=k * k)
                test = np.bincount(batch.flat_bins[te], weights=G[te, c], minlength=k * k)
                W = train.reshape(k, k)
                for i in range(m):
                    KW = Ks[i].T @ W
                    for j in range(m):
                        P = (KW @ Ks[j]).ravel() + float(self.alpha)
                        P /= P.sum()
                        with np.errstate(divide="ignore", invalid="ignore"):
                            scores[c, i, j] += np.where(test > 0, test * np.log(P), 0.0).sum()
        best = scores.reshape(N_CLASSES, -1).argmax(axis=1)
        return np.column_stack([grid[best // m], grid[best % m]]), scores

    def _bandwidths(self) -> np.ndarray | None:
        """Bandwidths per class and axis, shape (3, 2) (0 = no smoothing), or None for "cv"."""
        if self.m_step == "histogram":
            return np.zeros((N_CLASSES, 2))
        if isinstance(self.bandwidth, str):
            if self.bandwidth != "cv":
                raise InputError(f"The 'bandwidth' parameter of {type(self).__name__} must be a "
                                 f"float, 3 floats, (3, 2) floats or 'cv'. Got "
                                 f"{self.bandwidth!r} instead.")
            return None
        try:
            bw = np.asarray(self.bandwidth, dtype=float)
            bw = np.broadcast_to(bw.reshape(-1, 1) if bw.ndim == 1 else bw,
                                 (N_CLASSES, 2)).copy()
        except (TypeError, ValueError):
            bw = np.full((N_CLASSES, 2), np.nan)
        if not np.all(np.isfinite(bw)) or np.any(bw < 0):
            raise InputError(f"The 'bandwidth' parameter of {type(self).__name__} must be a "
                             f"float >= 0, 3 such floats (S0, S1, S2), (3, 2) floats (per class "
                             f"and axis) or 'cv'. Got {self.bandwidth!r} instead.")
        return bw

    def fit(self, X: Any, y: Any = None, *, callback: Callback | None = None
            ) -> LatentClassObservationModel:
        """Fit by EM with ``n_init`` restarts; ``callback(restart, iteration, loglik)`` per step.

        ``X``: step traces (outcome from ``correct``) or observation arrays with outcomes ``y``.
        With ``bandwidth="cv"`` the histogram fit is followed by a per-class bandwidth choice
        (5-fold held-out likelihood under the E-step weights) and EM from there.
        """
        k = self._check_params()
        bws = self._bandwidths()
        seqs, yy = as_sequences(X, y)
        known = yy[~np.isnan(yy)]
        if not (np.any(known == 1) and np.any(known == 0)):
            raise InputError("y must contain both correct and wrong final answers (the outcome "
                             "emission is what identifies the classes). Got "
                             f"{int((known == 1).sum())} correct and {int((known == 0).sum())} "
                             "wrong instead.")
        batch = _Batch(seqs, yy, self.bin_size)
        rng = np.random.default_rng(self.random_state)
        best: dict[str, Any] | None = None
        finals = []
        for r in range(int(self.n_init)):
            probs, p, eps = self._init(batch, k, rng)
            stage1 = np.zeros((N_CLASSES, 2)) if bws is None else bws
            res = self._em(batch, k, probs, p, eps, stage1, r, callback)
            finals.append(res["hist"][-1])
            if best is None or res["hist"][-1] > best["hist"][-1]:
                best = res
        assert best is not None
        self.cv_scores_ = None
        if bws is None:
            bws, self.cv_scores_ = self._cv_bandwidths(batch, best["G"], k, rng)
            res = self._em(batch, k, best["probs"], best["p"], best["eps"], bws,
                           int(self.n_init), callback)
            res["hist"] = best["hist"] + res["hist"]
            best = res
        self._set(best["probs"])
        self.bandwidth_ = bws
        self.p_ = best["p"]
        self.epsilon_ = best["eps"]
        self.loglik_history_ = np.asarray(best["hist"])
        self.lower_bound_ = float(best["hist"][-1])
        self.n_iter_ = len(best["hist"])
        self.converged_ = bool(best["conv"])
        self.restart_logliks_ = np.asarray(finals)
        self.n_traces_ = batch.n
        self.n_steps_ = int(batch.lengths.sum())
        return self

    # -- use -------------------------------------------------------------------------------
    def bin_probs(self, bin_size: float = 0.05) -> np.ndarray:
        """P(bin | class) on this grid or a coarser one."""
        self._check_fitted()
        return BinnedObservationModel.from_probs(self.probs_, self.bin_size).bin_probs(bin_size)

    def score_samples(self, X: Any, y: Any = None) -> np.ndarray:
        """Log-likelihood of each trace (binned observations and final outcome)."""
        self._check_fitted()
        return trace_log_likelihood(self.probs_, self.p_, X, y, epsilon=self.epsilon_,
                                    bin_size=self.bin_size)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per trace of held-out traces (higher is better)."""
        return float(np.mean(self.score_samples(X, y)))

    def posteriors(self, X: Any, y: Any = None) -> list[np.ndarray]:
        """P(c_t | trace, outcome) for every step of every trace: one (n_i, 3) array each."""
        self._check_fitted()
        seqs, yy = as_sequences(X, y)
        batch = _Batch(seqs, yy, self.bin_size)
        gammas, _, _ = _forward_backward(batch, self.probs_, self.p_, self.epsilon_)
        out: list[np.ndarray] = [None] * batch.n  # type: ignore[list-item]
        for j, i in enumerate(batch.order):
            out[i] = np.stack([gammas[t][j] for t in range(batch.lengths[j])])
        return out

    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON (loads as a binned model with :func:`load_observation_model`)."""
        self._check_fitted()
        return envelope("observation_model", {
            "method": "binned", "bin_size": self.bin_size, "alpha": self.alpha,
            "probs": self.probs_.tolist(),
            "em": {"p": self.p_, "epsilon": self.epsilon_, "m_step": self.m_step,
                   "loglik_history": self.loglik_history_.tolist(), "n_traces": self.n_traces_,
                   "n_steps": self.n_steps_, "converged": self.converged_}})

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def trace_log_likelihood(obs_probs: Any, p: float, X: Any, y: Any = None, *,
                         epsilon: float = 0.0, bin_size: float = 0.05) -> np.ndarray:
    """log P(binned observations, outcome) of each trace under (P(o|c), p, epsilon).

    Works for any binned model, e.g. the release's, to compare fits on held-out traces.
    """
    probs = np.asarray(obs_probs, dtype=float)
    k = grid_size(bin_size)
    if probs.shape != (N_CLASSES, k * k):
        raise InputError(f"obs_probs must have shape (3, {k * k}). Got {probs.shape} instead.")
    p = unit_float(p, "p")
    epsilon = unit_float(epsilon, "epsilon")
    seqs, yy = as_sequences(X, y)
    batch = _Batch(seqs, yy, bin_size)
    with np.errstate(divide="ignore"):
        _, ll, _ = _forward_backward(batch, probs, p, epsilon)
    out = np.empty(batch.n)
    out[batch.order] = ll
    return out


def fit_accuracy(obs_probs: Any, X: Any, y: Any = None, *, learn_epsilon: bool = False,
                 epsilon: float = 0.0, bin_size: float = 0.05, max_iter: int = 500,
                 tol: float = 1e-9) -> tuple[float, float, np.ndarray]:
    """EM for p (and epsilon) only, with P(o | c) held fixed, e.g. at a supervised fit.

    Answers "which next-step accuracy do these traces imply under that observation model?".
    Returns ``(p, epsilon, loglik_history)``.
    """
    probs = np.asarray(obs_probs, dtype=float)
    k = grid_size(bin_size)
    if probs.shape != (N_CLASSES, k * k):
        raise InputError(f"obs_probs must have shape (3, {k * k}). Got {probs.shape} instead.")
    seqs, yy = as_sequences(X, y)
    batch = _Batch(seqs, yy, bin_size)
    p, eps = 0.9, (max(epsilon, 0.05) if learn_epsilon else unit_float(epsilon, "epsilon"))
    hist: list[float] = []
    for _ in range(int(max_iter)):
        gammas, ll, last = _forward_backward(batch, probs, p, eps)
        hist.append(float(ll.sum()))
        if len(hist) > 1 and abs(hist[-1] - hist[-2]) / batch.lengths.sum() < tol:
            break
        G = np.concatenate(gammas)
        p = float(G[:, S0].sum() / (G[:, S0].sum() + G[:, S2].sum()))
        if learn_epsilon:
            m = ~np.isnan(batch.y)
            err = 1.0 - last[m, S0]
            eps = float(np.clip((batch.y[m] * err).sum() / max(err.sum(), 1e-300), 1e-9,
                                1 - 1e-9))
    return p, eps, np.asarray(hist)


def simulate_outcome_traces(obs_probs: Any, p: float, hazard: Any, n: int, *,
                            epsilon: float = 0.0, bin_size: float = 0.05,
                            random_state: Any = None
                            ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Draw ``n`` traces from the generative model EM assumes (known truth for checks).

    Lengths follow ``hazard`` (h[k] = P(end at k steps | reached k)); returns observation
    arrays, outcomes (1/0) and the true classes of each step.
    """
    rng = np.random.default_rng(random_state)
    probs = np.asarray(obs_probs, dtype=float)
    h = np.asarray(hazard, dtype=float)
    k = grid_size(bin_size)
    surv = np.cumprod(np.r_[1.0, 1.0 - h[:-1]])
    pmf = surv * h
    lengths = rng.choice(len(h), size=n, p=pmf / pmf.sum())
    lengths = np.maximum(lengths, 1)
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    seqs, ys, classes = [], np.empty(n), []
    for i, L in enumerate(lengths):
        # first error at step e (geometric), S1 afterwards
        e = rng.geometric(1.0 - p) - 1 if p < 1 else L
        c = np.where(np.arange(L) < e, S0, np.where(np.arange(L) == e, S2, S1))
        idx = np.array([np.searchsorted(cdf[ci], u, side="right") for ci, u in
                        zip(c, rng.random(L))])
        ij = np.column_stack([idx // k, idx % k]).astype(float)
        seqs.append(np.clip((ij + rng.random((L, 2))) * bin_size, 0.0, 1.0))
        classes.append(c)
        ys[i] = 1.0 if c[-1] == S0 else float(rng.random() < epsilon)
    return seqs, ys, classes


# -- routed traces: the transition depends on the action (TRIM POMDP, DESIGN.md §2) ---------

def step_labels(tr: StepTrace) -> np.ndarray | None:
    """Per-step draft labels (1 right, 0 wrong, -1 unknown) of a trace, or None.

    ``labels[t]`` (or ``first_error``: drafts before it right, it wrong, later unknown) is the
    correctness of weak draft t. A right draft is S0 (or S1 after an earlier error), a wrong one
    S2 (or S1); with the chain this pins the classes of a continue-only trace (supervised) and
    leaves only the strong rewrites' correctness to EM in a routed one. How often a draft after
    an earlier error is rated right (q) is learned.
    """
    if tr.labels is not None:
        return np.asarray(tr.labels, dtype=np.int8)
    if tr.first_error is not None:
        lab = np.full(tr.n_steps, -1, dtype=np.int8)
        lab[:tr.first_error] = 1
        lab[tr.first_error] = 0
        return lab
    return None


def routed_inputs(traces: Sequence[StepTrace]
                  ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray],
                             list[np.ndarray | None]]:
    """Observations, outcomes (NaN when unknown or censored), actions and label evidence."""
    if isinstance(traces, (str, bytes)) or not isinstance(traces, Sequence) or not traces \
            or not all(isinstance(tr, StepTrace) for tr in traces):
        raise InputError("traces must be a non-empty list of StepTrace objects.")
    seqs = [tr.observations() for tr in traces]
    y = np.array([np.nan if tr.correct is None or tr.censored else float(tr.correct)
                  for tr in traces])
    acts = [tr.action_array() for tr in traces]
    ev = [step_labels(tr) for tr in traces]
    return seqs, y, acts, ev


def strong_counts(batch: _Batch, gammas: list[np.ndarray], last: np.ndarray, p_strong: float,
                  epsilon: float) -> tuple[float, float]:
    """Expected (successes, failures) of the strong rewrites under the E-step posteriors.

    A rewrite at t (c_t in S0/S2) fails iff c_{t+1} = S1, so failures are
    P(c_{t+1} = S1) - P(c_t = S1); a final rewrite is judged by the answer.
    """
    succ = fail = 0.0
    if batch.acts is None:
        return succ, fail
    for t in range(len(batch.n_active) - 1):
        n_next = batch.n_active[t + 1]
        m = batch.acts[t][:n_next].astype(bool)
        if not m.any():
            continue
        gn, g = gammas[t + 1][:n_next][m], gammas[t][:n_next][m]
        succ += float((gn[:, S0] + gn[:, S2]).sum())
        fail += float(np.clip(gn[:, S1] - g[:, S1], 0.0, None).sum())
    m = batch.last_act.astype(bool)
    if m.any():
        ok = last[m, S0] + last[m, S2]
        y = batch.y[m]
        ps = float(p_strong)
        frac = np.where(y == 1, ps / max(ps + (1.0 - ps) * epsilon, 1e-300),
                        np.where(y == 0, 0.0, ps))
        succ += float((ok * frac).sum())
        fail += float((ok * (1.0 - frac)).sum())
    return succ, fail


def routed_log_likelihood(batch: _Batch, probs: np.ndarray, p_weak: float, p_strong: float,
                          epsilon: float = 0.0, q_s1: float = 0.5) -> float:
    """Total log-likelihood of a batch under (P(o|c), p_w, p_s, epsilon, q)."""
    with np.errstate(divide="ignore"):
        _, ll, _ = _forward_backward(batch, probs, p_weak, epsilon, p_strong, q_s1)
    return float(ll.sum())


class RoutedTrimEM(LatentClassObservationModel):
    """P(o | c), the weak and the strong next-step accuracy, jointly by EM over routed traces.

    The TRIM POMDP's transitions: out of a continued step S0 -> S0 w.p. p_w, else S2; out of a
    regenerated one S0/S2 -> (p_w p_s, 1 - p_s, p_s (1 - p_w)); S1 absorbing. Outcomes
    (``correct``) are emissions of the last class (a final regenerated step is right w.p. p_s);
    step labels, where present, are evidence on the classes (a trace with labels on every step
    is supervised), and censored traces (``max_steps``) contribute no outcome. M-step in closed
    form: p_w = E[#S0] / E[#S0 + #S2] over all steps, p_s = E[#successful rewrites] / E[#rewrites].
    On continue-only, unlabelled traces it is exactly :class:`LatentClassObservationModel`.

    ``p_strong_init`` is the starting value of p_s and stays its value when no step was
    regenerated (then p_s is not identifiable: ``strong_identified_`` is False; a rewrite informs
    p_s when a step follows it or the final answer is known).
    """

    def __init__(self, bin_size: float = 0.05, alpha: float = 0.1, m_step: str = "histogram",
                 bandwidth: Any = "cv", epsilon: float = 0.0, n_init: int = 8,
                 max_iter: int = 500, tol: float = 1e-7, random_state: int | None = 0,
                 p_strong_init: float = 0.9, emission: str = "joint") -> None:
        super().__init__(bin_size=bin_size, alpha=alpha, m_step=m_step, bandwidth=bandwidth,
                         learn_epsilon=False, epsilon=epsilon, n_init=n_init,
                         max_iter=max_iter, tol=tol, random_state=random_state)
        self.p_strong_init = p_strong_init
        self.emission = emission

    def _score_view(self, batch: _Batch) -> _Batch:
        """The batch with each step's bin replaced by its draft-score bin (1-D emission)."""
        view = copy.copy(batch)
        view.bins = batch.score_bins
        return view

    def _em(self, batch: _Batch, k: int, probs: np.ndarray, p: float, eps: float,
            bws: np.ndarray, restart: int, callback: Callback | None) -> dict[str, Any]:
        n_steps = int(batch.lengths.sum())
        ps = float(getattr(self, "_ps_start", self.p_strong_init))
        hist: list[float] = []
        converged = False
        G = np.empty((0, N_CLASSES))
        s_counts = (0.0, 0.0)
        score = self.emission == "score"
        fb_batch = self._score_view(batch) if score else batch
        e_probs = probs.reshape(N_CLASSES, k, k).sum(axis=1) if score else probs
        q = float(getattr(self, "_q_start", 0.5))
        for it in range(int(self.max_iter)):
            gammas, ll, last = _forward_backward(fb_batch, e_probs, p, eps,
                                                 ps if batch.acts is not None else None, q)
            G = np.concatenate(gammas)
            hist.append(float(ll.sum()))
            if callback is not None:
                callback(restart, it, hist[-1])
            s_counts = strong_counts(batch, gammas, last, ps, eps)
            if it > 0 and abs(hist[-1] - hist[-2]) / n_steps < float(self.tol):
                converged = True
                break
            counts = np.stack([np.bincount(batch.flat_bins, weights=G[:, c], minlength=k * k)
                               for c in range(N_CLASSES)])
            probs = self._smooth(counts, k, bws)
            if score:
                e_probs = np.stack([np.bincount(batch.flat_score_bins, weights=G[:, c],
                                                minlength=k) for c in range(N_CLASSES)])
                e_probs = e_probs + float(self.alpha)
                e_probs /= e_probs.sum(axis=1, keepdims=True)
            else:
                e_probs = probs
            g0, g2 = G[:, S0].sum(), G[:, S2].sum()
            p = float(g0 / (g0 + g2))
            if sum(s_counts) > 0:
                ps = float(np.clip(s_counts[0] / sum(s_counts), 1e-9, 1.0))
            if batch.labs is not None:
                w1 = G[batch.flat_labs >= 0, S1]
                if w1.sum() > 0:
                    q = float(np.clip(w1[batch.flat_labs[batch.flat_labs >= 0] == 1].sum()
                                      / w1.sum(), 1e-6, 1 - 1e-6))
        if score:  # the output P(o | c): the final E-step's weighted observation histogram
            counts = np.stack([np.bincount(batch.flat_bins, weights=G[:, c], minlength=k * k)
                               for c in range(N_CLASSES)])
            probs = self._smooth(counts, k, bws)
        return {"probs": probs, "p": p, "eps": eps, "hist": hist, "conv": converged, "G": G,
                "ps": ps, "s_counts": s_counts, "e_probs": e_probs, "q": q}

    def fit(self, X: Any, y: Any = None, *, callback: Callback | None = None
            ) -> RoutedTrimEM:
        """Fit from a list of :class:`StepTrace` (routed or not, labelled or outcome-only)."""
        k = self._check_params()
        unit_float(self.p_strong_init, "p_strong_init")
        if self.emission not in ("joint", "score"):
            raise InputError(f"The 'emission' parameter of {type(self).__name__} must be "
                             f"'joint' or 'score'. Got {self.emission!r} instead.")
        bws = self._bandwidths()
        seqs, yy, acts, ev = routed_inputs(X)
        n_lab = sum(e is not None for e in ev)
        known = yy[~np.isnan(yy)]
        if n_lab == 0 and not (np.any(known == 1) and np.any(known == 0)):
            raise InputError("traces must carry final-answer correctness ('correct', both right "
                             "and wrong answers) or step labels ('labels'/'first_error'): they "
                             "are what identifies the hidden classes. Got "
                             f"{int((known == 1).sum())} correct, {int((known == 0).sum())} "
                             f"wrong and {n_lab} step-labelled traces instead.")
        batch = _Batch(seqs, yy, self.bin_size, acts, ev)
        if self.emission == "score":
            batch.score_bins = [b % k for b in batch.bins]
            batch.flat_score_bins = batch.flat_bins % k
        self._batch = batch
        rng = np.random.default_rng(self.random_state)
        best: dict[str, Any] | None = None
        finals = []
        for r in range(int(self.n_init)):
            probs, p, eps = self._init(batch, k, rng)
            stage1 = np.zeros((N_CLASSES, 2)) if bws is None else bws
            res = self._em(batch, k, probs, p, eps, stage1, r, callback)
            finals.append(res["hist"][-1])
            if best is None or res["hist"][-1] > best["hist"][-1]:
                best = res
        assert best is not None
        self.cv_scores_ = None
        if bws is None:
            bws, self.cv_scores_ = self._cv_bandwidths(batch, best["G"], k, rng)
            self._ps_start, self._q_start = best["ps"], best["q"]
            try:
                res = self._em(batch, k, best["probs"], best["p"], best["eps"], bws,
                               int(self.n_init), callback)
            finally:
                del self._ps_start, self._q_start
            res["hist"] = best["hist"] + res["hist"]
            best = res
        self._set(best["probs"])
        self.emission_probs_ = best["e_probs"]
        self.q_s1_ = best["q"]
        self.bandwidth_ = bws
        self.p_ = best["p"]
        self.p_strong_ = best["ps"]
        self.epsilon_ = best["eps"]
        self.strong_counts_ = tuple(float(v) for v in best["s_counts"])
        self.n_regenerated_ = int(sum(int(np.sum(a)) for a in acts))
        self.n_informative_rewrites_ = int(sum(int(np.sum(a[:-1])) + int(a[-1] and not np.isnan(v))
                                               for a, v in zip(acts, yy)))
        self.strong_identified_ = self.n_informative_rewrites_ > 0
        self.n_labelled_ = n_lab
        self.n_outcomes_ = int((~np.isnan(yy)).sum())
        self.loglik_history_ = np.asarray(best["hist"])
        self.lower_bound_ = float(best["hist"][-1])
        self.n_iter_ = len(best["hist"])
        self.converged_ = bool(best["conv"])
        self.restart_logliks_ = np.asarray(finals)
        self.n_traces_ = batch.n
        self.n_steps_ = int(batch.lengths.sum())
        self.class_counts_ = best["G"].sum(axis=0)
        return self

    def loglik(self, p_weak: float, p_strong: float) -> float:
        """Log-likelihood of the training traces at (p_w, p_s), P(o | c) held at the fit."""
        self._check_fitted()
        batch = self._score_view(self._batch) if self.emission == "score" else self._batch
        return routed_log_likelihood(batch, self.emission_probs_, p_weak, p_strong,
                                     self.epsilon_, self.q_s1_)
