"""The E-step emission of ``fit-model``: which likelihood of the PRM scores EM maximises.

The TRIM observation of step t is o_t = (m_t, s_t), m_t = min(s_0..s_{t-1}) (1 at t = 0), and
the POMDP's P(o | c) is a table over the (m, s) grid. ``m_t`` is a deterministic function of the
earlier scores, so the likelihood of a score sequence s_0..s_{T-1} given the classes is

    P(s | c) = prod_t P(s_t | c_t, s_<t) = prod_t P(s_t | c_t, m_t)          (Markov in m)
             = prod_t P(m_t, s_t | c_t) / P(m_t | c_t)

with P(m, s | c) the POMDP's table and P(m | c) its m-marginal. Three emissions:

* ``joint``: prod_t P(m_t, s_t | c_t), the POMDP's own filter likelihood (= ``fit-em``). It
  multiplies the proper likelihood by prod_t P(m_t | c_t): the minimum, already accounted for by
  the earlier steps, is counted again at every step as evidence on the current class.
* ``conditional``: prod_t P(m_t, s_t | c_t) / P(m_t | c_t), the proper likelihood above. Its
  M-step is the same posterior-weighted (m, s) histogram (the MLE of P(s | c, m) is
  N_c(m, s) / N_c(m)), so the fitted table has the POMDP's form; only the E-step differs.
* ``score``: prod_t P(s_t | c_t), proper when scores are independent given the class.

``auto`` (fit-model's default): ``joint`` when no step was regenerated, ``score`` otherwise;
see :func:`resolve_emission` for why, and benchmarks/results/fit_model_recovery.md for the
numbers of all three.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError
from trimpomdp.observation.base import N_CLASSES
from trimpomdp.observation.em import (
    Callback,
    RoutedTrimEM,
    _Batch,
    _forward_backward,
    strong_counts,
)

S0, S1, S2 = 0, 1, 2
EMISSIONS = ("auto", "joint", "conditional", "score")


def resolve_emission(emission: str, traces: Sequence[StepTrace]) -> str:
    """The emission ``auto`` stands for on these traces (others are returned unchanged).

    No regenerated step: ``joint``. Then p_s is not identified and every other parameter EM
    touches (P(o | c), p_w) is exactly ``fit-em``'s problem: with epsilon = 0 a correct trace is
    all S0 and a wrong one holds exactly one S2, EM only places that first error. fit-model must
    reproduce fit-em there (issue 14), and ``joint`` is the one emission that does (it is fit-em's
    and the POMDP filter's likelihood); ``score`` and ``conditional`` move P(o | S2) by TV 0.35-0.48
    on the real MATH-500 traces. This branch is fit-em compatibility, not the best estimator
    for every data source: on synthetic continue-only traces with scores independent given the
    class, ``joint`` is biased too (p_w 0.820 for 0.80; ``score`` 0.802).

    Some step regenerated: ``score``, a proper likelihood of the draft scores. ``joint`` equals
    the proper likelihood times prod_t P(m_t | c_t), a minimum already explained by earlier steps
    counted again as evidence on every later class; on routed traces that factor also meets
    classes the minimum no longer tracks (a regenerated draft's score is dropped from it, so S1
    after a failed rewrite, or S0 after a repaired error, keeps a high m) and biases p_w, p_s and
    P(o | S2). Of the proper ones, ``score`` has 3 (K - 1) free emission parameters against
    ``conditional``'s 3 K (K - 1), so it locates the few S2 steps and rewrite failures that p_s
    rests on with far less variance; it is exact when the scores are independent given the class.
    Measured (20,000 synthetic routed traces, 30 % exploration, outcomes only): score meets every
    recovery target, conditional misses TV(P(o | S2)) (0.128 > 0.08), joint misses p_w and p_s.
    """
    if emission not in EMISSIONS:
        raise InputError(f"emission must be one of {', '.join(EMISSIONS)}. Got {emission!r} "
                         "instead.", field="emission")
    if emission != "auto":
        return emission
    return "score" if any(tr.n_regenerated for tr in traces) else "joint"


def conditional_emission(probs: np.ndarray, k: int) -> np.ndarray:
    """P(s | c, m) on the (m, s) grid, shape (3, k*k): P(m, s | c) / P(m | c)."""
    J = probs.reshape(N_CLASSES, k, k)
    M = J.sum(axis=2, keepdims=True)
    return np.divide(J, M, out=np.full_like(J, 1.0 / k), where=M > 0).reshape(N_CLASSES, k * k)


class TrimModelEM(RoutedTrimEM):
    """:class:`RoutedTrimEM` with the proper ``conditional`` emission as well.

    ``emission``: ``joint``, ``score`` (both as in RoutedTrimEM) or ``conditional``
    (module docstring). The fitted ``probs_`` is always the posterior-weighted (m, s)
    histogram per class, the POMDP's P(o | c).
    """

    def __init__(self, bin_size: float = 0.05, alpha: float = 0.1, m_step: str = "histogram",
                 bandwidth: Any = "cv", epsilon: float = 0.0, n_init: int = 8,
                 max_iter: int = 500, tol: float = 1e-7, random_state: int | None = 0,
                 p_strong_init: float = 0.9, emission: str = "conditional") -> None:
        super().__init__(bin_size=bin_size, alpha=alpha, m_step=m_step, bandwidth=bandwidth,
                         epsilon=epsilon, n_init=n_init, max_iter=max_iter, tol=tol,
                         random_state=random_state, p_strong_init=p_strong_init,
                         emission=emission)

    def fit(self, X: Any, y: Any = None, *, callback: Callback | None = None) -> TrimModelEM:
        """Fit from step traces; ``conditional`` runs the joint machinery with P(s | c, m)."""
        if self.emission not in ("joint", "score", "conditional"):
            raise InputError(f"The 'emission' parameter of {type(self).__name__} must be "
                             f"'joint', 'conditional' or 'score'. Got {self.emission!r} "
                             "instead.", field="emission")
        kind = self.emission
        self._conditional = kind == "conditional"
        self.emission = "joint" if self._conditional else kind
        try:
            super().fit(X, y, callback=callback)
        finally:
            self.emission = kind
        return self

    def _em(self, batch: _Batch, k: int, probs: np.ndarray, p: float, eps: float,
            bws: np.ndarray, restart: int, callback: Callback | None) -> dict[str, Any]:
        if not getattr(self, "_conditional", False):
            return super()._em(batch, k, probs, p, eps, bws, restart, callback)
        n_steps = int(batch.lengths.sum())
        ps = float(getattr(self, "_ps_start", self.p_strong_init))
        q = float(getattr(self, "_q_start", 0.5))
        hist: list[float] = []
        converged = False
        G = np.empty((0, N_CLASSES))
        s_counts = (0.0, 0.0)
        e_probs = conditional_emission(probs, k)
        for it in range(int(self.max_iter)):
            gammas, ll, last = _forward_backward(batch, e_probs, p, eps,
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
            e_probs = conditional_emission(probs, k)
            g0, g2 = G[:, S0].sum(), G[:, S2].sum()
            p = float(g0 / (g0 + g2))
            if sum(s_counts) > 0:
                ps = float(np.clip(s_counts[0] / sum(s_counts), 1e-9, 1.0))
            if batch.labs is not None:
                w1 = G[batch.flat_labs >= 0, S1]
                if w1.sum() > 0:
                    q = float(np.clip(w1[batch.flat_labs[batch.flat_labs >= 0] == 1].sum()
                                      / w1.sum(), 1e-6, 1 - 1e-6))
        # the output P(o | c): the final E-step's weighted observation histogram
        counts = np.stack([np.bincount(batch.flat_bins, weights=G[:, c], minlength=k * k)
                           for c in range(N_CLASSES)])
        probs = self._smooth(counts, k, bws)
        return {"probs": probs, "p": p, "eps": eps, "hist": hist, "conv": converged, "G": G,
                "ps": ps, "s_counts": s_counts, "e_probs": e_probs, "q": q}


__all__ = ["EMISSIONS", "TrimModelEM", "conditional_emission", "resolve_emission"]
