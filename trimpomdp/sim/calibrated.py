"""The calibrated simulator of step-routed generation (real score pools + release endpoints).

Two trace generators share one engine (``simulate`` for any :class:`StepRouter`, ``rollout`` for
vectorised policies such as PPO training) and one set of pre-drawn random numbers per problem
(:class:`Scenario`), so every policy run on the same scenario sees the same problems, the same
draft steps and the same strong steps (common random numbers: differences between policies are
not sampling noise).

:class:`CalibratedSimulator` — assumptions, stated plainly:

1. A problem is one of the 500 MATH-500 problems, drawn uniformly. Its difficulty comes from the
   real Best-of-32 outcomes of Qwen2.5-7B-Instruct on it (``ScorePools``, from StrictPRMBench):
   a_j = (correct + 0.5) / (32 + 1). The strong model solves it with solution accuracy
   σ(logit a_j + δ_s), the weak model with σ(logit a_j + δ_w); δ_s, δ_w are fitted so that
   strong-only and weak-only accuracy equal the release's measured MATH-500 endpoints
   (0.730 and 0.364). Per-step accuracy is that solution accuracy to the power 1 / (mean step
   count of the problem), constant over steps: errors are independent across steps.
2. A solution has L steps, L drawn from the problem's real solution lengths (capped at 30); the
   same L whoever writes the steps (a regenerated step replaces one step). It ends after step L.
3. Class dynamics are TRIM's: a step is correct with the writer's per-step accuracy only if the
   prefix is correct; an earlier error is unrecoverable. The final answer is correct iff every
   kept step is correct (no lucky answers, no errors that do not matter).
4. PRM scores are drawn, per problem, from that problem's real Qwen2.5-Math-PRM-7B step scores:
   a correct step on a correct prefix from the steps of its correct solutions; a first wrong step
   from the first step scoring < ``error_threshold`` (else the lowest) of its wrong solutions;
   a step after an error from the later steps of its wrong solutions. Problems without such
   solutions fall back to the pool of all problems. The PRM is assumed to score the weak model's
   steps as it scores the strong model's (the dumps hold 7B solutions only).
   The weak model's steps are not scored like the 7B's: with 7B pools the simulated TRIM-Thr
   regenerates far too rarely (0.34 vs 0.98 strong calls per problem at k = 0.05). So weak-draft
   scores get a logit shift per class, logit s' = logit s − d_c (d_ok, d_err, d_post), fitted by
   ``fit_score_shift`` on the measured TRIM-Thr curve (on its own seed): either to the
   strong-token fraction only (accuracy then a pure prediction) or jointly to fraction and
   accuracy; the bundled fit and its objective are in ``data/sim/calibration_math500.json``.
   Strong-step scores are not shifted.
5. Step token counts are drawn from the problem's real step lengths, scaled so that weak-only and
   strong-only tokens per problem equal the release's measured 400.9 and 494.8.
6. Cost = strong tokens decoded (prefill free); a regenerated draft's tokens are counted as
   discarded weak tokens, as the release logs them.

Fitted: the two endpoints (k = 0 and k = 1 of TRIM-Thr) and three score shifts; checked against
the measured TRIM-Thr curve on an independent seed in ``benchmarks/calibration.py``.

**Paired steps** (``paired_tokens=True``, the calibration ``data/sim/calibration_math500_paired
.json``; issue 19) replaces assumption 5 and refines 4, because the real data pair them:

1b. The weak model's difficulty is not the 7B's: its per-problem logit is logit a_j + δ_w + τ·z,
    z ~ N(0, 1) drawn per simulated problem (δ_w refitted by quadrature so weak-only accuracy
    stays 0.364; ``weak_difficulty_sd`` τ). The same z moves the scores of its correct drafts,
    logit s' += β·z (``score_difficulty`` β): a problem that is easy for the weak model also
    gets surer PRM scores, hard ones lower scores on correct steps too, so a solution's scores
    are dependent through its problem, not only through the 7B pool. Strong-model difficulty
    is the 7B's (δ_s only).
4b. A weak draft's score and token count come from the *same* real step (``ScorePools``' paired
    pools). In the 7B dumps a step's length falls steeply with its score (mean 149 tokens below
    0.05, 34 above 0.9; first wrong steps 109 vs 37 for correct ones), and the POMDP prices a
    regeneration at λ × the draft's tokens, so drawing them independently makes the simulated
    POMDP regenerate long low-scored steps it would really skip, and vice versa.
    Scores of correct drafts on a correct prefix are mapped logit s' = a · logit s − d_ok
    (``ok_logit_scale`` a, fitted; a = 1 is a pure shift); err / post drafts are shifted by d_err,
    d_post as in 4.
5b. A draft has scale_w · n^γ tokens (n the paired real step's tokens; γ = ``draft_len_exp``
    fitted: the 1.5B model's length spread between easy and hard steps need not be the 7B's).
    Its strong rewrite has scale_s · n^ρ · m^(1−ρ) tokens, m an independent real step of the
    problem (ρ = ``strong_len_corr``: how much of the draft's length the rewrite inherits).
    scale_w, scale_s are set by simulation so that weak-only / strong-only tokens per problem
    equal the release's 400.9 / 494.8 (assumption 5's targets).
7. Checked and *not* modelled: dependence of a correct step's score on the earlier scores of
   the same solution beyond the problem: in the 7B dumps the intra-solution correlation of
   correct steps' normal-score ranks within a problem's pool is 0.06, so they stay independent
   given the problem.
7b. Modelled (``error_score_corr`` r, measured, not fitted): the scores of a wrong solution *are*
    dependent after its first error. In the 7B dumps (normal scores by rank within the
    problem's err / post pools, 3,845 wrong solutions; ``pools.error_score_correlation``) the
    first-error step and the next step correlate 0.28 (0.30 with the mean of the later steps),
    two consecutive post-error steps 0.27: an error the PRM does not see is followed by steps it
    also scores high. One Gaussian factor per simulated solution, shared by its weak and strong
    err / post draws with loading √r, r = :data:`ERROR_SCORE_CORR` = 0.27, reproduces both
    (copula on the score quantile within the problem's pool, with the paired tokens of the same
    real step; every marginal unchanged). Assumed beyond the data: the factor also links the
    first-error draws of repeated errors (a real solution has one first error).

8. The simulated *routing loop* is the release's (:mod:`trimpomdp.sim.release_rule`, issue 19):
   a regenerated step is re-scored with the strong text in the history, so the strong step's
   PRM score (drawn from the unshifted 7B pools ``ss_*`` by its class) enters the min / product
   of previous scores (``simulate(..., observe_regenerated=True)``); TRIM-POMDP's release rule
   reads its belief from the release's reflected KDE and its action from the table at the
   snapped token bin and belief, without knowing which step is the last. This is no new
   parameter: it changes no TRIM-Thr figure (Thr does not look at previous scores) and was
   checked against the release's code, not fitted. With the earlier approximation (a
   regenerated step counting 1.0 in the min) the simulated POMDP kept regenerating after a
   wrong strong step, which is the +11 … +16 strong tokens it had too many at λ ≥ 0.65.

**Checked against the data and kept opt-in** (issue 19: the default calibration has none of them,
because none improves the out-of-sample check below; ``benchmarks/sim_validation.py --trial``
refits the Thr curve with one of them and prints that check):

1c. ``weak_step_profile`` m(t): step t of the weak model is correct with p_w^m(t) (δ_w refitted).
    Data: in the release's 1.5B MATH-train solutions (``data/trim_release/steps_qwen2.5-1.5b-
    instruct_math-train.json``: step counts of correct solutions, first-error step of wrong ones)
    the first-error hazard at step 1 is 0.13 (step 2: 0.19), while the default simulator's
    weak-only solutions, with the same rule (first step scoring < 0.35), have 0.22 at step 1;
    m = (0.4, 1) brings step 1 to 0.14 and leaves steps 2–7 within ±0.02 of the data (default
    shape parameters).
1d. ``hard_step_share`` φ: a share φ of a solution's error hazard sits on one hard step (uniform
    position; exponents m_h = 1 − φ + φL, others 1 − φ, so every solution accuracy p^L is
    unchanged), for both writers. Data: in the 7B dumps the first errors of a problem's wrong
    solutions cluster: within-problem variance of the relative first-error position 0.044 vs
    0.071 under constant hazard (same p_j and lengths), the modal step holds 43 % vs 36 % of
    them; φ ≈ 0.65 reproduces both.
3b. ``invisible_failures``: a solution can fail with no step error (rate per problem
    ``ScorePools.n_invisible / n_total``; its last step fails for both writers and is scored
    as a correct step). Data: 1,180 of the 4,873 wrong 7B solutions (24 %) have no final
    ``\boxed{}`` answer; the PRM sees nothing in them (median min score 0.972, like correct
    solutions' 0.981; a step < 0.35 in 22 % of them vs 79 % of the other wrong ones), yet the
    default pools count their lowest step as a first error. Built with
    ``ScorePools.from_traces(..., unboxed_invisible=True)`` (not bundled).
5c. ``err_len_scale`` κ: first-wrong drafts have κ × their paired tokens (Thr's discarded
    draft tokens per call are flat in k, 77–81, the simulator's fall from 89 to 75).

Measured (refit on Thr, then the exact-rule POMDP check over seeds 0, 1, 2 at 4000 problems;
pooled accuracy within ±0.03 / mean Δacc; Thr check of ``benchmarks/calibration.py``): default
6/8, −0.018, Thr 19/21; 1c m = (0.4, 1): 6/8, −0.016, 19/21; 1d φ = 0.65: 6/8, −0.018, 19/21
(Thr loss 2.02 vs 1.68); 3b: 6/8, +0.008, but Thr 8/21 (the simulated Thr curve rises above
strong-only: 0.761 at k = 0.95) and C̄ 5/8; 5c: the Thr fit keeps κ = 1 (κ = 0.8 raises the
discarded-token term from 0.30 to 0.50), while the POMDP prediction moves a lot with κ (0.6, default parameters otherwise, no refit:
mean Δacc +0.029, calls at λ = 0.85 0.68 vs 0.44), so the prediction of the POMDP's few cheap
regenerations hangs on the length of short wrong drafts, which Thr's means do not pin down.
Dropping the 1,180 unboxed solutions from the pools altogether: Thr 4/21, mean Δacc +0.025.

The paired model's shape parameters (d_ok, d_err, d_post, a, γ, ρ, τ, β; r is measured) are fitted on the measured
TRIM-Thr curve only (:func:`trimpomdp.sim.fitting.fit_thr`); the measured TRIM-POMDP curve is the
out-of-sample check (:mod:`trimpomdp.sim.validation`, ``benchmarks/sim_validation.py``).

:class:`NaiveSimulator` is the POMDP-as-simulator (one p_w, p_s for all problems, lengths from the
hazard, scores from the binned class densities, flat token counts), kept as the reference that
DESIGN.md §2 warns about.
"""
from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from trimpomdp._estimator import BaseEstimator
from trimpomdp._io import check_envelope, read_json
from trimpomdp._validate import nonneg_float, unit_float
from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.pomdp.dynamics import DEFAULT_MAX_STEPS
from trimpomdp.resources import resource_path
from trimpomdp.sim.engine import rollout, threshold_act
from trimpomdp.sim.pools import PAIRED_POOLS_FILE, ScorePools
from trimpomdp.sim.scenario import Scenario, check_n_seed

CALIBRATION_FILE_V1 = "sim/calibration_math500.json"
PAIRED_CALIBRATION_FILE = "sim/calibration_math500_paired.json"
PAIRED_TOL_CALIBRATION_FILE = "sim/calibration_math500_paired_tol.json"
#: the calibration :func:`load_simulator` uses by default: the paired-step simulator fitted on
#: all columns of the measured TRIM-Thr curve (it predicts the measured TRIM-POMDP curve out of
#: sample far better than the first calibration: ``benchmarks/results/sim_validation.md``)
CALIBRATION_FILE = PAIRED_CALIBRATION_FILE
#: r of assumption 7b, measured on the 7B dumps (not fitted; see the module docstring)
ERROR_SCORE_CORR = 0.27
RELEASE_ENDPOINTS = {"weak_accuracy": 0.364, "strong_accuracy": 0.73, "weak_tokens": 400.946,
                     "strong_tokens": 494.84}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _remap_uniform(u: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Monotone map of uniforms u with u' < p exactly when u < q (so P(u' < p) = q).

    The engine decides a step correct when u_w < p_w (one p_w per problem); this gives step t
    the accuracy q[:, t] instead while keeping the draws (common random numbers) and their order.
    """
    p, q = np.broadcast_to(p, u.shape), np.clip(np.broadcast_to(q, u.shape), 1e-12, 1 - 1e-12)
    return np.where(u < q, u * (p / q), p + (u - q) * ((1.0 - p) / (1.0 - q)))


class CalibratedSimulator(BaseEstimator):
    """Problem-level simulator fitted to real PRM score pools and the release's endpoints.

    Parameters
    ----------
    score_shift : (d_ok, d_err, d_post)
        Logit shifts of the weak drafts' scores per class (see the module docstring);
        :meth:`fit_score_shift` fits them, :func:`load_simulator` loads the bundled fit.
    weak_accuracy, strong_accuracy : float
        Weak-only / strong-only accuracy to match (defaults: the release's MATH-500 values).
    weak_tokens, strong_tokens : float
        Weak-only / strong-only tokens per problem to match.
    max_steps : int
        Horizon: solutions are cut at this many steps (the routed model's ``max_steps``).
    paired_tokens : bool
        Draw each weak draft's (score, tokens) from the same real step (assumption 5b; needs
        paired pools, the default pools then are ``PAIRED_POOLS_FILE``). False: tokens are drawn
        independently of the score (the first calibration).
    strong_len_corr : float in [0, 1]
        ρ of assumption 5b: a strong rewrite has scale_s · n_draft^ρ · n_indep^(1−ρ) tokens
        (n_draft the raw tokens of the draft it replaces, n_indep an independent real step of
        the problem). Only with ``paired_tokens``.
    draft_len_exp : float > 0
        γ of assumption 5b: a draft has scale_w · n_draft^γ tokens (γ < 1 compresses the 7B
        steps' spread of lengths between classes). Only with ``paired_tokens``.
    ok_logit_scale : float > 0
        a of assumption 4b: a correct draft on a correct prefix scores
        logit s' = a · logit s − d_ok (a < 1: the PRM is less sure of the weak model's correct
        steps, in both directions). Only with ``paired_tokens``.

    weak_difficulty_sd : float >= 0
        τ of assumption 1b: the weak model's per-problem logit difficulty is the 7B's plus
        τ · z, z ~ N(0, 1) per simulated problem (δ_w refitted so weak-only accuracy stays at its
        endpoint). Only with ``paired_tokens``.
    score_difficulty : float
        β of assumption 1b: correct drafts' score logits move by β · z (a problem that is easier
        for the weak model than for the 7B also gets surer scores). Only with ``paired_tokens``.
    error_score_corr : float in [0, 1)
        r of assumption 7b: the scores of a simulated solution's first-error and post-error
        steps share one Gaussian factor (normal-score correlation r; marginals unchanged). Only
        with ``paired_tokens``.
    weak_step_profile : sequence of float > 0
        m(1), m(2), … of assumption 1c (opt-in): step t of the weak model is correct with
        p_w^m(t) (last value repeated; empty: constant, assumption 1). Only with ``paired_tokens``.
    hard_step_share : float in [0, 1)
        φ of assumption 1d (opt-in): share of a solution's error hazard on one hard step, for
        both writers. Only with ``paired_tokens``; not combinable with ``weak_step_profile``.
    invisible_failures : bool
        Assumption 3b (opt-in): solutions can fail without a step error at the pools' rate
        ``n_invisible / n_total`` (needs pools built with ``unboxed_invisible=True``).
    err_len_scale : float > 0
        κ of assumption 5c (opt-in): a first-wrong draft has κ times its paired tokens.
    """

    _SHAPE_PARAMS = ("score_shift", "strong_len_corr", "draft_len_exp", "ok_logit_scale",
                     "weak_difficulty_sd", "score_difficulty", "error_score_corr",
                     "weak_step_profile", "hard_step_share", "err_len_scale")

    def __init__(self, weak_accuracy: float = RELEASE_ENDPOINTS["weak_accuracy"],
                 strong_accuracy: float = RELEASE_ENDPOINTS["strong_accuracy"],
                 weak_tokens: float = RELEASE_ENDPOINTS["weak_tokens"],
                 strong_tokens: float = RELEASE_ENDPOINTS["strong_tokens"],
                 score_shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 max_steps: int = DEFAULT_MAX_STEPS, paired_tokens: bool = False,
                 strong_len_corr: float = 0.0, draft_len_exp: float = 1.0,
                 ok_logit_scale: float = 1.0, weak_difficulty_sd: float = 0.0,
                 score_difficulty: float = 0.0, error_score_corr: float = 0.0,
                 weak_step_profile: Sequence[float] = (), hard_step_share: float = 0.0,
                 invisible_failures: bool = False, err_len_scale: float = 1.0) -> None:
        self.score_shift = score_shift
        self.err_len_scale = err_len_scale
        self.invisible_failures = invisible_failures
        self.hard_step_share = hard_step_share
        self.weak_step_profile = weak_step_profile
        self.error_score_corr = error_score_corr
        self.weak_difficulty_sd = weak_difficulty_sd
        self.score_difficulty = score_difficulty
        self.ok_logit_scale = ok_logit_scale
        self.draft_len_exp = draft_len_exp
        self.paired_tokens = paired_tokens
        self.strong_len_corr = strong_len_corr
        self.max_steps = max_steps
        self.weak_accuracy = weak_accuracy
        self.strong_accuracy = strong_accuracy
        self.weak_tokens = weak_tokens
        self.strong_tokens = strong_tokens

    def _solution_acc(self, delta: float) -> np.ndarray:
        return _sigmoid(self._base_logit + delta)

    def _expected_acc(self, delta: float) -> float:
        p = self._solution_acc(delta) ** (1.0 / self._mean_len)
        pools, tot = self.pools_, 0.0
        for j in range(pools.n_problems):
            o, c = pools.offsets["lengths"][j], pools.counts["lengths"][j]
            tot += float(np.mean(p[j] ** pools.values["lengths"][o:o + c])) * self._visible[j]
        return tot / pools.n_problems

    def _expected_acc_mixed(self, delta: float, tau: float,
                            cum_profile: np.ndarray | None = None) -> float:
        """Expected solution accuracy with per-problem logit noise τ·z (Gauss–Hermite, 15 nodes);
        ``cum_profile[l]`` = Σ_{t<=l} m(t), the exponent of p for a solution of l steps
        (assumption 1c; ``None``: l)."""
        x, w = np.polynomial.hermite_e.hermegauss(15)
        w = w / w.sum()
        p = _sigmoid(self._base_logit[:, None] + delta + tau * x[None, :]) ** (
            1.0 / self._mean_len[:, None])                                   # (J, K)
        lens, mask = self._len_mat
        if cum_profile is not None:
            lens = cum_profile[lens.astype(np.int64)]
        acc = (p[:, :, None] ** lens[:, None, :] * mask[:, None, :]).sum(-1) / mask.sum(-1)[:, None]
        return float(((acc @ w) * self._visible).mean())

    def _fit_delta(self, target: float, tau: float = 0.0,
                   cum_profile: np.ndarray | None = None) -> float:
        lo, hi = -15.0, 15.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            acc = (self._expected_acc(mid) if tau == 0.0 and cum_profile is None
                   else self._expected_acc_mixed(mid, tau, cum_profile))
            if acc < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def fit(self, pools: ScorePools | None = None) -> CalibratedSimulator:
        """Fit δ_w, δ_s (accuracy endpoints) and token scales; ``None`` uses the bundled pools."""

        for name in ("weak_accuracy", "strong_accuracy"):
            v = unit_float(getattr(self, name), name)
            if not 0.0 < v < 1.0:
                raise InputError(f"The '{name}' parameter must be in (0, 1). Got {v!r} instead.",
                                 field=name)
        nonneg_float(self.weak_tokens, "weak_tokens", strict=True)
        nonneg_float(self.strong_tokens, "strong_tokens", strict=True)
        if pools is None:
            pools = ScorePools.load(resource_path("data", PAIRED_POOLS_FILE)
                                    if self.paired_tokens else None)
        if self.paired_tokens and not pools.paired:
            raise InputError("paired_tokens needs pools with paired token counts (see "
                             "ScorePools.from_traces).", field="paired_tokens")
        self.pools_ = pools
        P = self.pools_
        inv = np.zeros(P.n_problems)
        if self.invisible_failures:  # assumption 3b
            if not self.paired_tokens or P.n_invisible is None:
                raise InputError("invisible_failures needs paired_tokens and pools with "
                                 "n_invisible (ScorePools.from_traces(..., "
                                 "unboxed_invisible=True)).", field="invisible_failures")
            inv = P.n_invisible.astype(float)
        #: per problem: probability that a solution can fail without a step error (3b)
        self.invisible_rate_ = inv / P.n_total
        self._visible = 1.0 - self.invisible_rate_
        a = (P.n_correct + 0.5) / (P.n_total - inv + 1.0)
        self._base_logit = _logit(a)
        lens = P.values["lengths"]
        self._mean_len = np.array([lens[o:o + c].mean() for o, c in
                                   zip(P.offsets["lengths"], P.counts["lengths"])])
        cnt = P.counts["lengths"]
        lm = np.ones((P.n_problems, int(cnt.max())))
        mask = np.arange(lm.shape[1])[None, :] < cnt[:, None]
        for j, (o, c) in enumerate(zip(P.offsets["lengths"], cnt)):
            lm[j, :c] = lens[o:o + c]
        self._len_mat = (lm, mask.astype(float))
        self.delta_w_ = self._fit_delta(float(self.weak_accuracy))
        self.delta_s_ = self._fit_delta(float(self.strong_accuracy))
        self.p_weak_ = self._solution_acc(self.delta_w_) ** (1.0 / self._mean_len)
        self.p_strong_ = self._solution_acc(self.delta_s_) ** (1.0 / self._mean_len)
        return self._fit_shape()

    def with_shape(self, **params: Any) -> CalibratedSimulator:
        """A copy with other shape parameters (``score_shift``, ``strong_len_corr``,
        ``draft_len_exp``), refitted without redoing the endpoint fit (fast; for fitting)."""
        if not hasattr(self, "pools_"):
            raise NotFittedError("This CalibratedSimulator instance is not fitted yet.")
        bad = set(params) - set(self._SHAPE_PARAMS)
        if bad:
            raise InputError(f"with_shape takes {self._SHAPE_PARAMS}. Got {sorted(bad)}.",
                             field=min(bad))
        new = copy.copy(self)
        for k, v in params.items():
            setattr(new, k, v)
        return new._fit_shape()

    def _fit_shape(self) -> CalibratedSimulator:
        P = self.pools_
        self.rho_ = float(unit_float(self.strong_len_corr, "strong_len_corr")
                          ) if self.paired_tokens else 0.0
        g = nonneg_float(self.draft_len_exp, "draft_len_exp", strict=True)
        self.gamma_ = float(g) if self.paired_tokens else 1.0
        a = nonneg_float(self.ok_logit_scale, "ok_logit_scale", strict=True)
        self.ok_scale_ = float(a) if self.paired_tokens else 1.0
        tau = float(nonneg_float(self.weak_difficulty_sd, "weak_difficulty_sd"))
        beta = float(self.score_difficulty)
        if not np.isfinite(beta):
            raise InputError(f"score_difficulty must be finite. Got {beta!r}.",
                             field="score_difficulty")
        r = float(unit_float(self.error_score_corr, "error_score_corr"))
        if r >= 1.0:
            raise InputError(f"error_score_corr must be in [0, 1). Got {r!r}.",
                             field="error_score_corr")
        self.err_corr_ = r if self.paired_tokens else 0.0
        kap = nonneg_float(self.err_len_scale, "err_len_scale", strict=True)
        self.err_len_scale_ = float(kap) if self.paired_tokens else 1.0
        phi = float(unit_float(self.hard_step_share, "hard_step_share"))
        self.hard_share_ = phi if self.paired_tokens else 0.0
        self.tau_ = tau if self.paired_tokens else 0.0
        self.beta_ = beta if self.paired_tokens else 0.0
        prof = np.asarray(self.weak_step_profile, dtype=float).ravel()
        if prof.size and (not np.all(np.isfinite(prof)) or np.any(prof <= 0)):
            raise InputError(f"weak_step_profile must hold positive numbers. Got "
                             f"{self.weak_step_profile!r}.", field="weak_step_profile")
        self.step_profile_ = (self._profile_cols(prof, int(self.max_steps))
                              if prof.size and self.paired_tokens else None)
        if self.step_profile_ is not None and self.hard_share_ > 0:
            raise InputError("weak_step_profile and hard_step_share cannot be combined (each "
                             "remaps the same uniforms).", field="hard_step_share")
        cum = (None if self.step_profile_ is None else
               np.concatenate([[0.0], np.cumsum(self.step_profile_)]))
        self.delta_w_tau_ = (self._fit_delta(float(self.weak_accuracy), self.tau_, cum)
                             if self.tau_ > 0 or cum is not None else self.delta_w_)
        tok = P.values["step_tokens"]
        mean_tok = np.array([tok[o:o + c].mean() for o, c in
                             zip(P.offsets["step_tokens"], P.counts["step_tokens"])])
        per_problem = float(np.mean(self._mean_len * mean_tok))
        self.scale_w_ = float(self.weak_tokens) / per_problem
        self.scale_s_ = float(self.strong_tokens) / per_problem
        sh = np.asarray(self.score_shift, dtype=float)
        if sh.shape != (3,) or not np.all(np.isfinite(sh)):
            raise InputError(f"The 'score_shift' parameter must be 3 finite numbers (d_ok, d_err, "
                             f"d_post). Got {self.score_shift!r} instead.", field="score_shift")
        self.score_shift_ = tuple(float(x) for x in sh)
        if self.paired_tokens:  # class-dependent token counts: scale by simulation
            self.scale_w_ = self.scale_s_ = 1.0
            raw = self.scenario(20000, 987654)
            w = rollout(raw, lambda t, i, s, n, f: np.zeros(len(i), bool)).summary()
            st = rollout(raw, lambda t, i, s, n, f: np.ones(len(i), bool)).summary()
            self.scale_w_ = float(self.weak_tokens) / w["mean_weak_kept"]
            self.scale_s_ = float(self.strong_tokens) / st["mean_strong_tokens"]
        return self

    def fit_score_shift(self, measured: Sequence[Mapping[str, Any]], *, objective: str = "joint",
                        n: int = 4000, seed: int = 12345,
                        d_ok: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
                        d_err: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
                        d_post: Sequence[float] = (2.0, 3.0, 4.0, 5.0)) -> CalibratedSimulator:
        """Grid-fit the shifts to measured TRIM-Thr rows (0 < k < 1) on an own seed.

        ``objective="cost"`` fits (d_ok, d_post) with d_err = 0 to ``target_token_frac`` only, so
        accuracy stays a pure prediction; ``"joint"`` fits all three to mean |Δfrac| / 0.05 +
        mean |Δaccuracy| / 0.03 (the calibration goals). Sets ``score_shift_`` and ``shift_fit_``.
        """
        if objective not in ("cost", "joint"):
            raise InputError(f"objective must be 'cost' or 'joint'. Got {objective!r} instead.",
                             field="objective")
        rows = [r for r in measured if 0.0 < float(r["threshold"]) < 1.0]
        if not rows:
            raise InputError("measured must hold TRIM-Thr rows with 0 < threshold < 1.",
                             field="threshold")
        grid = []
        for a in d_ok:
            for b in (d_err if objective == "joint" else (0.0,)):
                for c in d_post:
                    self.score_shift_ = (float(a), float(b), float(c))
                    sc = self.scenario(n, seed)
                    ef, ea = [], []
                    for r in rows:
                        res = rollout(sc, threshold_act(float(r["threshold"]))).summary()
                        ef.append(abs(res["target_token_frac"] - float(r["target_token_frac"])))
                        ea.append(abs(res["accuracy"] - float(r["accuracy"])))
                    loss = float(np.mean(ef)) / 0.05 + (float(np.mean(ea)) / 0.03
                                                        if objective == "joint" else 0.0)
                    grid.append((loss, float(a), float(b), float(c), float(np.mean(ef)),
                                 float(np.mean(ea))))
        best = min(grid)
        self.score_shift_ = best[1:4]
        self.shift_fit_ = {"objective": objective, "loss": best[0], "mae_token_frac": best[4],
                           "mae_accuracy": best[5], "n": n, "seed": seed,
                           "grid": [list(g) for g in grid]}
        return self

    def scenario(self, n: int, seed: int = 0) -> Scenario:
        """Draw ``n`` problems with seed ``seed`` (same seed → same problems and draws)."""
        if not hasattr(self, "pools_"):
            raise NotFittedError("This CalibratedSimulator instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")
        n, seed = check_n_seed(n, seed)
        rng = np.random.default_rng([seed, 20260123])
        P = self.pools_
        prob = rng.integers(0, P.n_problems, n)
        L = P.draw("lengths", prob, rng.random((n, 1)))[:, 0].clip(1, self.max_steps)
        shape = (n, int(self.max_steps))

        def tok(scale: float) -> np.ndarray:
            raw = P.draw("step_tokens", prob, rng.random(shape))
            return np.maximum(1, np.rint(raw * scale)).astype(np.int64)

        if self.paired_tokens:
            return self._paired_scenario(rng, prob, L, shape, seed)
        arrays = {"u_w": rng.random(shape), "u_s": rng.random(shape),
                  "n_w": tok(self.scale_w_), "n_s": tok(self.scale_s_)}
        for pre in ("sc", "ss"):
            for pool, d in zip(("ok", "err", "post"), self.score_shift_):
                x = P.draw(pool, prob, rng.random(shape))
                if pre == "sc" and d != 0.0:
                    x = np.clip(x, 1e-4, 1.0 - 1e-4)
                    x = _sigmoid(_logit(x) - d)
                arrays[f"{pre}_{pool}"] = x
        return Scenario(L=L.astype(np.int64), p_w=self.p_weak_[prob], p_s=self.p_strong_[prob],
                        problem=prob, seed=seed, source="calibrated", **arrays)

    def _paired_scenario(self, rng: np.random.Generator, prob: np.ndarray, L: np.ndarray,
                         shape: tuple[int, int], seed: int) -> Scenario:
        P = self.pools_
        arrays: dict[str, Any] = {"u_w": rng.random(shape), "u_s": rng.random(shape)}
        indep = np.maximum(1, P.draw("step_tokens", prob, rng.random(shape))).astype(float)
        names = {"ok": ("n_w", "n_s"), "err": ("n_w_err", "n_s_err"),
                 "post": ("n_w_post", "n_s_post")}
        u_pool = {pool: rng.random(shape) for pool in ("ok", "err", "post")}
        arrays.update(self._paired_draws(P, prob, u_pool, indep, names))
        u_ss = {pool: rng.random(shape) for pool in ("ok", "err", "post")}
        for pool in ("ok", "err", "post"):
            arrays[f"ss_{pool}"] = P.draw(pool, prob, u_ss[pool])
        p_w = self.p_weak_[prob]
        if self.step_profile_ is not None and self.tau_ == 0:
            p_w = self._solution_acc(self.delta_w_tau_)[prob] ** (1.0 / self._mean_len[prob])
        if self.tau_ > 0 or self.beta_ != 0:  # assumption 1b (drawn last: other draws unchanged)
            z: np.ndarray = np.asarray(rng.standard_normal(prob.shape[0]))
            if self.tau_ > 0:
                p_w = _sigmoid(self._base_logit[prob] + self.delta_w_tau_ + self.tau_ * z) ** (
                    1.0 / self._mean_len[prob])
            if self.beta_ != 0:
                x = np.clip(arrays["sc_ok"], 1e-6, 1.0 - 1e-6)
                arrays["sc_ok"] = _sigmoid(_logit(x) + self.beta_ * z[:, None])
        if self.err_corr_ > 0:  # assumption 7b (drawn after 1b: the r = 0 draws are unchanged)
            w = np.asarray(rng.standard_normal(prob.shape[0]))[:, None]
            r = self.err_corr_
            S = self._sorted_pools()

            def tie(u: np.ndarray) -> np.ndarray:
                return np.asarray(ndtr(np.sqrt(r) * w + np.sqrt(1.0 - r) *
                                       ndtri(np.clip(u, 1e-12, 1.0 - 1e-12))))

            u_pool = {k: (tie(v) if k != "ok" else v) for k, v in u_pool.items()}
            new = self._paired_draws(S, prob, {k: u_pool[k] for k in ("err", "post")}, indep,
                                     names)
            arrays.update(new)
            for pool in ("err", "post"):
                arrays[f"ss_{pool}"] = S.draw(pool, prob, tie(u_ss[pool]))
        if self.step_profile_ is not None:  # assumption 1c: u_w < p_w with P = p_w ** m(t)
            arrays["u_w"] = _remap_uniform(arrays["u_w"], p_w[:, None],
                                           p_w[:, None] ** self.step_profile_[None, :])
        p_s = self.p_strong_[prob]
        if self.hard_share_ > 0:  # assumption 1d (drawn last: the other draws are unchanged)
            phi, n = self.hard_share_, prob.shape[0]
            hard = np.minimum(L - 1, (rng.random(n) * L).astype(np.int64))
            m = np.full(shape, 1.0 - phi)
            m[np.arange(n), hard] += phi * L
            arrays["u_w"] = _remap_uniform(arrays["u_w"], p_w[:, None], p_w[:, None] ** m)
            arrays["u_s"] = _remap_uniform(arrays["u_s"], p_s[:, None], p_s[:, None] ** m)
        if self.invisible_failures:  # assumption 3b (drawn last: the other draws are unchanged)
            i = np.nonzero(rng.random(prob.shape[0]) < self.invisible_rate_[prob])[0]
            t = L[i] - 1
            for k in ("u_w", "u_s"):
                arrays[k] = np.array(arrays[k], dtype=float)
                arrays[k][i, t] = 1.0  # both writers' last step fails
            for a, b in (("sc_err", "sc_ok"), ("ss_err", "ss_ok"), ("n_w_err", "n_w"),
                         ("n_s_err", "n_s")):
                arrays[a][i, t] = arrays[b][i, t]  # ... and looks like a correct step
        return Scenario(L=L.astype(np.int64), p_w=p_w, p_s=p_s,
                        problem=prob, seed=seed, source="calibrated-paired", **arrays)

    @staticmethod
    def _profile_cols(prof: np.ndarray, horizon: int) -> np.ndarray:
        """m(t) for t = 1 … horizon: the profile, its last value repeated."""
        out = np.full(horizon, float(prof[-1]))
        k = min(horizon, prof.size)
        out[:k] = prof[:k]
        return out

    def _sorted_pools(self) -> ScorePools:
        """The pools with every problem's score pools (and their paired tokens) sorted by score,
        so that a uniform picks a score quantile (for the copula of assumption 7b)."""
        if getattr(self, "_sorted_cache", None) is None:
            P = self.pools_
            values = dict(P.values)
            for pool in ("ok", "err", "post"):
                seg = np.repeat(np.arange(P.n_problems), P.counts[pool])
                order = np.lexsort((P.values[pool], seg))
                values[pool] = P.values[pool][order]
                values[f"{pool}_tokens"] = P.values[f"{pool}_tokens"][order]
            self._sorted_cache = ScorePools(problem_ids=P.problem_ids, n_correct=P.n_correct,
                                            n_total=P.n_total, values=values,
                                            offsets=P.offsets, counts=P.counts,
                                            provenance=P.provenance, n_invisible=P.n_invisible)
        return self._sorted_cache

    def _paired_draws(self, P: ScorePools, prob: np.ndarray, u_pool: Mapping[str, np.ndarray],
                      indep: np.ndarray, names: Mapping[str, tuple[str, str]]
                      ) -> dict[str, np.ndarray]:
        """Draft scores and (draft, rewrite) tokens of the given pools from uniforms ``u_pool``."""
        rho, gamma = self.rho_, self.gamma_
        arrays: dict[str, np.ndarray] = {}
        for pool, d in zip(("ok", "err", "post"), self.score_shift_):
            if pool not in u_pool:
                continue
            x, n_raw = P.draw_paired(pool, prob, u_pool[pool])
            a = self.ok_scale_ if pool == "ok" else 1.0
            if d != 0.0 or a != 1.0:
                x = _sigmoid(a * _logit(np.clip(x, 1e-4, 1.0 - 1e-4)) - d)
            arrays[f"sc_{pool}"] = x
            n_raw = np.maximum(1, n_raw).astype(float)
            kw, ks = names[pool]
            kap = self.err_len_scale_ if pool == "err" else 1.0
            arrays[kw] = np.maximum(1, np.rint(n_raw ** gamma * self.scale_w_ * kap)
                                    ).astype(np.int64)
            strong = n_raw ** rho * indep ** (1.0 - rho)
            arrays[ks] = np.maximum(1, np.rint(strong * self.scale_s_)).astype(np.int64)
        return arrays


def load_simulator(pools: str | os.PathLike[str] | None = None, *,
                   calibration: str | None = None, **params: Any) -> CalibratedSimulator:
    """The calibrated simulator on the bundled (or given) pools, with a bundled calibration.

    ``calibration`` names a file under ``data/`` (default :data:`CALIBRATION_FILE`):
    :data:`PAIRED_CALIBRATION_FILE` (paired steps, fitted by ``benchmarks/sim_validation.py
    --fit``) or :data:`CALIBRATION_FILE_V1` (the first calibration: three score shifts, written by
    ``benchmarks/calibration.py --fit``). Parameters passed in ``params`` override the file's;
    with ``score_shift`` passed and no ``calibration``, no file is read (first-calibration
    simulator with those shifts).
    """
    if calibration is None and "score_shift" in params:
        return CalibratedSimulator(**params).fit(None if pools is None else ScorePools.load(pools))
    name = CALIBRATION_FILE if calibration is None else calibration
    try:
        doc = check_envelope(read_json(resource_path("data", name)), "sim_calibration", name)
    except InputError:
        warnings.warn(f"{name} not found: the simulator runs without score shifts "
                      "(uncalibrated cost curve).", stacklevel=2)
        doc = {}
    if doc.get("model") == "paired":
        p = doc["params"]
        fitted = {"paired_tokens": True,
                  "score_shift": (p["d_ok"], p["d_err"], p["d_post"]),
                  "strong_len_corr": p["strong_len_corr"], "draft_len_exp": p["draft_len_exp"],
                  "ok_logit_scale": p.get("ok_logit_scale", 1.0),
                  "weak_difficulty_sd": p.get("weak_difficulty_sd", 0.0),
                  "score_difficulty": p.get("score_difficulty", 0.0),
                  "error_score_corr": p.get("error_score_corr", 0.0),
                  "weak_step_profile": tuple(doc.get("weak_step_profile", ())),
                  "hard_step_share": p.get("hard_step_share", 0.0),
                  "invisible_failures": bool(p.get("invisible_failures", False)),
                  "err_len_scale": p.get("err_len_scale", 1.0)}
    elif "score_shift" in doc:
        fitted = {"score_shift": tuple(doc["score_shift"])}
    else:
        fitted = {}
    fitted.update(params)
    return CalibratedSimulator(**fitted).fit(None if pools is None else ScorePools.load(pools))


__all__ = ["CALIBRATION_FILE", "CALIBRATION_FILE_V1", "ERROR_SCORE_CORR", "PAIRED_CALIBRATION_FILE",
           "PAIRED_TOL_CALIBRATION_FILE",
           "RELEASE_ENDPOINTS", "CalibratedSimulator", "load_simulator"]
