"""A better TRIM observation model for real PRM scores: quantile-calibrated scores, one emission
per step (the current score), fitted by EM from outcome-labelled traces.

Why (measured on StrictPRMBench MATH-500, docs/assessment.md): 83% of Qwen2.5-Math-PRM step
scores are above 0.95 and 70% above 0.99, so the release's 0.05 grid puts most steps of correct
and incorrect solutions into one bin and throws away the resolution the min-score rule uses; and
the TRIM observation (min of previous scores, current score) re-emits the same low minimum at
every later step, so the filter counts one bad step many times (over-confident P(S0): Brier 0.24,
log-loss > 1 on held-out solutions). This model

1. maps every score through the empirical CDF of the training steps' scores
   (:class:`QuantileTransform`, monotone, so min(g(s)) = g(min(s)) and TRIM-Thr is unchanged up
   to its threshold), which spreads the scores evenly over the grid;
2. lets each step emit only its current (transformed) score from P(s | c) on a 40-bin grid
   (:class:`~trimpomdp.observation.typed_em.TypedTrimEM` with ``emission="current"``), optionally
   with K latent problem types.

With one type it is an ordinary :class:`~trimpomdp.model.TrimModel` on the 0.025 grid whose
P(o | c) is constant along the min_prev axis, so the exact solver and the Bayes filter apply
unchanged to transformed scores (:meth:`CalibratedScoreModel.trim_model`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from trimpomdp._estimator import BaseEstimator
from trimpomdp.errors import InputError
from trimpomdp.evaluation.assess import StepData
from trimpomdp.model import TrimModel
from trimpomdp.observation.grid import grid_size
from trimpomdp.observation.transform import ScoreTransform
from trimpomdp.observation.typed_em import TypedTrimEM

__all__ = ["CalibratedScoreModel", "QuantileTransform"]


class QuantileTransform:
    """Monotone map of PRM scores to [0, 1]: the empirical CDF of training scores, linearly
    interpolated between ``n_knots + 1`` quantiles (ties in the data collapse to one knot)."""

    def __init__(self, n_knots: int = 200) -> None:
        self.n_knots = n_knots

    def fit(self, scores: Any) -> QuantileTransform:
        s = np.asarray(scores, float).ravel()
        s = s[np.isfinite(s)]
        if s.size < 2:
            raise InputError("the quantile transform needs at least 2 scores.", field="scores")
        u = np.linspace(0.0, 1.0, int(self.n_knots) + 1)
        q = np.quantile(s, u)
        q[0], q[-1] = 0.0, 1.0  # cover the whole unit interval
        # strictly increasing knots: average the levels of tied quantiles
        xs, idx = np.unique(q, return_inverse=True)
        us = np.bincount(idx, weights=u) / np.bincount(idx)
        us[0], us[-1] = 0.0, 1.0
        self.knots_, self.levels_ = xs, us
        self.score_transform_ = ScoreTransform(tuple(xs.tolist()), tuple(us.tolist()))
        return self

    def transform(self, x: Any) -> np.ndarray:
        """g(x) for scores x in [0, 1] (NaN stays NaN); the router's numbers
        (:class:`~trimpomdp.observation.transform.ScoreTransform`)."""
        return self.score_transform_.batch(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in a TRIM model file's ``score_transform``."""
        return self.score_transform_.to_dict()


def transform_data(data: StepData, g: QuantileTransform) -> StepData:
    """``data`` with every score replaced by g(score)."""
    S = np.where(data.mask(), g.transform(np.nan_to_num(data.scores, nan=0.0)), np.nan)
    return dataclasses.replace(data, scores=S)


class CalibratedScoreModel(BaseEstimator):
    """Quantile transform + current-score TRIM chain(s) fitted by EM (see the module docstring).

    ``n_types`` latent problem types (1 = a plain TRIM model); ``bin_size`` of the transformed
    score grid; ``alpha`` additive smoothing per bin; ``learn_epsilon``: learn
    ε = P(correct answer | an error occurred) (PRMs flag steps of solutions whose answer is right),
    which only the fit and :meth:`predict_correct` use (the TRIM POMDP pays nothing for S1/S2);
    ``token_bins`` > 1: the score density also depends on the step's token count (quantile bins
    of the training steps' tokens), P(score | token bin, c). ``emission="conditional"``:
    P(score | min_prev, c) (the running minimum as a deterministic feature instead of a re-emitted
    observation), with ``min_bands`` > 0 on that many bands of the transformed minimum.
    ``step_edges`` (e.g. (1, 2, 3, 5, 8)): P(score | step-index bin, c), the bins split at those
    step indices (0-based). Only the plain and min-conditioned variants are TrimModels.
    """

    def __init__(self, n_types: int = 1, bin_size: float = 0.025, alpha: float = 0.1,
                 bandwidth: float = 0.0, n_knots: int = 200, n_init: int = 2,
                 random_state: int = 0, learn_epsilon: bool = False, token_bins: int = 0,
                 emission: str = "current", min_bands: int = 0,
                 step_edges: tuple[int, ...] = ()) -> None:
        self.n_types = n_types
        self.emission = emission
        self.min_bands = min_bands
        self.step_edges = step_edges
        self.token_bins = token_bins
        self.learn_epsilon = learn_epsilon
        self.bin_size = bin_size
        self.alpha = alpha
        self.bandwidth = bandwidth
        self.n_knots = n_knots
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, data: StepData) -> CalibratedScoreModel:
        """Fit on the outcome-labelled traces of ``data``."""
        has = data.has_outcome
        if not has.any():
            raise InputError("fitting needs traces with a final-answer outcome.", field="correct")
        data = data.subset(has)
        self.transform_ = QuantileTransform(self.n_knots).fit(data.scores[data.mask()])
        nb = int(self.token_bins)
        if nb < 0:
            raise InputError(f"token_bins must be >= 0. Got {nb} instead.", field="token_bins")
        self.token_edges_ = np.quantile(data.tokens[data.mask()], np.arange(1, nb) / nb) \
            if nb > 1 else np.empty(0)
        td = transform_data(data, self.transform_)
        coded = nb > 1 or len(self.step_edges) > 0
        if nb > 1 and len(self.step_edges) > 0:
            raise InputError("give token_bins or step_edges, not both.", field="step_edges")
        if len(self.step_edges) + 1 > grid_size(self.bin_size):
            raise InputError("step_edges must give fewer bins than the grid has.",
                             field="step_edges")
        self.em_ = TypedTrimEM(n_types=self.n_types, bin_size=self.bin_size, alpha=self.alpha,
                               bandwidth=self.bandwidth,
                               emission="conditional" if coded else self._emission(),
                               n_init=self.n_init, random_state=self.random_state,
                               learn_epsilon=self.learn_epsilon).fit(self._sequences(td), td.correct.tolist())
        return self

    def _emission(self) -> str:
        if self.emission not in ("current", "conditional"):
            raise InputError(f"emission must be 'current' or 'conditional'. Got "
                             f"{self.emission!r} instead.", field="emission")
        return str(self.emission)

    def _sequences(self, td: StepData) -> list[np.ndarray]:
        """Observation arrays on the transformed scale: (min_prev, score), or with token bins
        (token-bin code, score) so that the conditional emission is P(score | token bin, c)."""
        seqs = td.sequences()
        nb = int(self.token_bins)
        if len(self.step_edges) > 0:
            edges = np.asarray(self.step_edges)
            n = edges.size + 1
            return [np.column_stack([(np.searchsorted(edges, np.arange(s.shape[0]),
                                                      side="right") + 0.5) / n, s[:, 1]])
                    for s in seqs]
        if int(self.min_bands) > 0 and self.emission == "conditional":
            m = int(self.min_bands)
            return [np.column_stack([(np.minimum(np.floor(s[:, 0] * m), m - 1) + 0.5) / m,
                                     s[:, 1]]) for s in seqs]
        if nb <= 1:
            return seqs
        out = []
        for i, s in enumerate(seqs):
            tok = td.tokens[i, :s.shape[0]]
            code = (np.searchsorted(self.token_edges_, tok, side="right") + 0.5) / nb
            out.append(np.column_stack([code, s[:, 1]]))
        return out

    def transformed(self, data: StepData) -> StepData:
        """``data`` on the model's score scale."""
        return transform_data(data, self.transform_)

    def step_probabilities(self, data: StepData) -> np.ndarray:
        """Filtered P(S0) (n, T) at every step (NaN past each trace's end)."""
        seqs = self._sequences(self.transformed(data))
        P = np.full(data.scores.shape, np.nan)
        for i, f in enumerate(self.em_.filter(seqs)):
            P[i, :f.size] = f
        return P

    def predict_correct(self, data: StepData) -> np.ndarray:
        """P(correct answer) of each solution of ``data``."""
        return self.em_.predict_correct(self._sequences(self.transformed(data)))

    def step_log_likelihood(self, data: StepData) -> float:
        """Held-out log-likelihood per step (nats) of the *raw* scores and outcomes: the binned
        mass on the transformed grid turned into a density of the raw score (divided by the bin
        width times the transform's slope), so it compares with any model of the raw scores."""
        has = data.has_outcome
        d = data.subset(has)
        td = self.transformed(d)
        ll = self.em_.trace_log_likelihood(self._sequences(td), d.correct.tolist()).sum()
        s = d.scores[d.mask()]
        kn, lv = self.transform_.knots_, self.transform_.levels_
        seg = np.clip(np.searchsorted(kn, s, side="right") - 1, 0, kn.size - 2)
        slope = (np.diff(lv) / np.diff(kn))[seg]
        ll += np.sum(np.log(np.maximum(slope, 1e-300))) - s.size * np.log(self.bin_size)
        return float(ll / s.size)

    def trim_model(self, base: TrimModel, *, role: str = "weak", name: str | None = None
                   ) -> TrimModel:
        """A :class:`TrimModel` for the exact solver, the Bayes filter and the router (one type
        only): its grid is on transformed scores and it carries the transform, so it takes raw
        PRM scores like any model; P(o | c) constant along min_prev, the fitted accuracy as
        ``p_<role>``, everything else from ``base``."""
        if int(self.token_bins) > 1 or len(self.step_edges) > 0:
            raise InputError("a model with token- or step-dependent densities is not a TrimModel "
                             "(its P(o | c) depends on the step's token count or index; the "
                             "router's density sees only (min_prev, score)).", field="token_bins")
        if int(self.min_bands) > 0 and self.emission == "conditional":
            raise InputError("a model on bands of the minimum is not exported (its grid rows "
                             "are bands, not min_prev bins).", field="min_bands")
        if self.em_.weights_.size != 1:
            raise InputError("only a one-type model is a TrimModel (the exact solver's belief has"
                             f" three classes). Got {self.em_.weights_.size} types.",
                             field="n_types")
        if role not in ("weak", "strong"):
            raise InputError(f"role must be 'weak' or 'strong'. Got {role!r} instead.",
                             field="role")
        k = grid_size(self.bin_size)
        probs = self.em_.probs_[0] / k  # each min_prev row carries the same current-score law
        probs = probs / probs.sum(axis=1, keepdims=True)
        prov = {**base.provenance, "observation_model": (
            f"EM, current-score emission on quantile-transformed scores ({self.em_.n_traces_} "
            f"traces, {self.em_.n_steps_} steps, grid {self.bin_size}; the grid is on the "
            f"quantile-transformed score, {self.transform_.knots_.size} knots)"),
            f"p_{role}": f"EM next-step accuracy {self.em_.p_[0]:.6f}"}
        prov.pop("score_transform", None)
        return base.replace(obs_probs=probs, bin_size=self.bin_size,
                            **{f"p_{role}": float(self.em_.p_[0])},
                            name=name or "calibrated-score-em", provenance=prov,
                            score_transform=self.transform_.score_transform_)
