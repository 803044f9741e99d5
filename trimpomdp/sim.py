"""Simulators of step-routed generation, and the budget → λ search built on them.

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

:class:`NaiveSimulator` is the POMDP-as-simulator (one p_w, p_s for all problems, lengths from the
hazard, scores from the binned class densities, flat token counts), kept as the reference that
DESIGN.md §2 warns about.
"""
from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator

from trimpomdp._io import atomic_write, check_envelope, envelope
from trimpomdp.errors import InputError, NotFittedError

if TYPE_CHECKING:
    from trimpomdp.controller import StepRouter
    from trimpomdp.data.schema import StepTrace
    from trimpomdp.model import TrimModel

T_MAX = 30
POOLS_KIND = "sim_score_pools"
POOLS_FILE = "sim/math500_qwen2.5-7b_qwen-prm_pools.json.gz"
CALIBRATION_FILE = "sim/calibration_math500.json"
#: the release's measured MATH-500 endpoints (Qwen2.5-1.5B -> 7B, TRIM-Thr k = 0 and k = 1)
RELEASE_ENDPOINTS = {"weak_accuracy": 0.364, "strong_accuracy": 0.73, "weak_tokens": 400.946,
                     "strong_tokens": 494.84}
_POOL_NAMES = ("ok", "err", "post", "step_tokens", "lengths")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScorePools:
    """Per-problem empirical pools: PRM scores by class, step tokens, solution lengths, outcomes.

    ``values[name]`` concatenates every problem's pool; problem j's pool is
    ``values[name][offsets[name][j] : offsets[name][j] + counts[name][j]]``.
    """

    problem_ids: tuple[str, ...]
    n_correct: np.ndarray
    n_total: np.ndarray
    values: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.problem_ids)
        if n == 0:
            raise InputError("pools must hold at least one problem.", field="problem_ids")
        for name in _POOL_NAMES:
            if self.offsets[name].shape != (n,) or self.counts[name].shape != (n,):
                raise InputError(f"pool '{name}' must have one offset and count per problem.",
                                 field=name)
        if np.any(self.counts["lengths"] == 0) or np.any(self.counts["step_tokens"] == 0):
            raise InputError("every problem needs at least one solution length and step.",
                             field="lengths")

    @property
    def n_problems(self) -> int:
        """Number of problems."""
        return len(self.problem_ids)

    @classmethod
    def from_traces(cls, traces: Sequence[StepTrace], *, error_threshold: float = 0.35,
                    max_steps: int = T_MAX) -> ScorePools:
        """Pools from scored solutions grouped by problem (``problem_id`` before '#')."""
        groups: dict[str, list[Any]] = {}
        for tr in traces:
            if tr.correct is None or tr.tokens is None:
                raise InputError("every trace needs 'correct' and 'tokens' to build pools.",
                                 field="correct")
            groups.setdefault(tr.problem_id.split("#")[0], []).append(tr)
        ids = tuple(sorted(groups))
        pools: dict[str, list[list[float]]] = {k: [] for k in _POOL_NAMES}
        n_corr, n_tot = [], []
        for pid in ids:
            ok, err, post, tok, lens = [], [], [], [], []
            for tr in groups[pid]:
                s = list(tr.scores)
                lens.append(min(len(s), max_steps))
                tok.extend(tr.tokens[:max_steps])
                if tr.correct:
                    ok.extend(s)
                else:
                    low = [i for i, v in enumerate(s) if v < error_threshold]
                    e = low[0] if low else int(np.argmin(s))
                    ok.extend(s[:e])
                    err.append(s[e])
                    post.extend(s[e + 1:])
            for k, v in zip(_POOL_NAMES, (ok, err, post, tok, lens)):
                pools[k].append(v)
            n_corr.append(sum(bool(tr.correct) for tr in groups[pid]))
            n_tot.append(len(groups[pid]))
        values, offsets, counts = {}, {}, {}
        for k in _POOL_NAMES:
            cnt = np.array([len(v) for v in pools[k]], dtype=np.int64)
            counts[k] = cnt
            offsets[k] = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
            flat = [x for v in pools[k] for x in v]
            values[k] = np.asarray(flat, dtype=float if k in ("ok", "err", "post") else np.int64)
        return cls(problem_ids=ids, n_correct=np.asarray(n_corr), n_total=np.asarray(n_tot),
                   values=values, offsets=offsets, counts=counts,
                   provenance={"error_threshold": error_threshold, "n_solutions": len(traces)})

    def draw(self, name: str, problems: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Draw from each problem's pool with uniforms ``u`` (shape (n, m)); empty pools fall back
        to the pool of all problems."""
        vals, off, cnt = self.values[name], self.offsets[name][problems], self.counts[name][problems]
        idx = off[:, None] + np.minimum((u * np.maximum(cnt, 1)[:, None]).astype(np.int64),
                                        np.maximum(cnt, 1)[:, None] - 1)
        glob = (u * len(vals)).astype(np.int64).clip(0, len(vals) - 1)
        return vals[np.where(cnt[:, None] > 0, idx, glob)]

    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON-ready form (scores rounded to 1e-4)."""
        pools = {}
        for k in _POOL_NAMES:
            v = self.values[k]
            pools[k] = {"values": (np.round(v, 4).tolist() if v.dtype.kind == "f" else v.tolist()),
                        "counts": self.counts[k].tolist()}
        return envelope(POOLS_KIND, {"problem_ids": list(self.problem_ids),
                                     "n_correct": self.n_correct.tolist(),
                                     "n_total": self.n_total.tolist(), "pools": pools,
                                     "provenance": self.provenance})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as gzipped JSON (atomically)."""
        with atomic_write(path, "wb") as fh:
            fh.write(gzip.compress(json.dumps(self.to_dict()).encode(), mtime=0))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ScorePools:
        """Read pools; ``None`` reads the bundled MATH-500 pools."""
        from trimpomdp._io import read_json

        if path is None:
            from trimpomdp.resources import resource_path

            path = resource_path("data", POOLS_FILE)
        doc = check_envelope(read_json(path), POOLS_KIND, path)
        try:
            values, offsets, counts = {}, {}, {}
            for k in _POOL_NAMES:
                cnt = np.asarray(doc["pools"][k]["counts"], dtype=np.int64)
                counts[k] = cnt
                offsets[k] = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
                dt = float if k in ("ok", "err", "post") else np.int64
                values[k] = np.asarray(doc["pools"][k]["values"], dtype=dt)
            return cls(problem_ids=tuple(doc["problem_ids"]),
                       n_correct=np.asarray(doc["n_correct"]), n_total=np.asarray(doc["n_total"]),
                       values=values, offsets=offsets, counts=counts,
                       provenance=dict(doc.get("provenance", {})))
        except (KeyError, TypeError) as exc:
            raise InputError(f"malformed pools file ({exc})", path=path) from None


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scenario:
    """Pre-drawn randomness for ``n`` problems (arrays (n,) or (n, 30)); see the module docstring.

    ``sc_*`` are draft-step scores for a correct step on a correct prefix (ok), a first wrong
    step (err) and a step after an error (post); ``ss_*`` the same for strong steps.
    """

    L: np.ndarray
    p_w: np.ndarray
    p_s: np.ndarray
    u_w: np.ndarray
    u_s: np.ndarray
    n_w: np.ndarray
    n_s: np.ndarray
    sc_ok: np.ndarray
    sc_err: np.ndarray
    sc_post: np.ndarray
    ss_ok: np.ndarray
    ss_err: np.ndarray
    ss_post: np.ndarray
    problem: np.ndarray
    seed: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        n = self.L.shape[0]
        if n == 0 or np.any(self.L < 1) or np.any(self.L > T_MAX):
            raise InputError(f"L must hold lengths in [1, {T_MAX}] for n >= 1 problems.")
        for k in ("u_w", "u_s", "n_w", "n_s", "sc_ok", "sc_err", "sc_post"):
            if getattr(self, k).shape != (n, T_MAX):
                raise InputError(f"{k} must have shape ({n}, {T_MAX}).", field=k)

    @property
    def n(self) -> int:
        """Number of problems."""
        return int(self.L.shape[0])

    def weak_correct(self) -> np.ndarray:
        """Outcome of weak-only on each problem (the same draws as any policy run)."""
        return np.array([bool(np.all(self.u_w[i, :self.L[i]] < self.p_w[i])) for i in
                         range(self.n)])

    def strong_correct(self) -> np.ndarray:
        """Outcome of strong-only on each problem."""
        return np.array([bool(np.all(self.u_s[i, :self.L[i]] < self.p_s[i])) for i in
                         range(self.n)])

    def subset(self, idx: np.ndarray) -> Scenario:
        """The scenario restricted to problems ``idx``."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k, v in d.items():
            if isinstance(v, np.ndarray):
                d[k] = v[idx]
        return Scenario(**d)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RunResult:
    """Per-problem outcomes of one policy on one scenario."""

    policy: str
    correct: np.ndarray
    strong_tokens: np.ndarray
    weak_kept: np.ndarray
    weak_discarded: np.ndarray
    strong_calls: np.ndarray
    steps: np.ndarray
    traces: list[list[dict[str, Any]]] | None = None

    @property
    def accuracy(self) -> float:
        """Fraction of problems answered correctly."""
        return float(np.mean(self.correct))

    @property
    def mean_strong_tokens(self) -> float:
        """C̄: mean strong tokens per problem."""
        return float(np.mean(self.strong_tokens))

    def summary(self, strong_only_tokens: float | None = None) -> dict[str, Any]:
        """JSON-ready metrics (``target_token_frac`` as the release defines it)."""
        tot = float(np.sum(self.strong_tokens + self.weak_kept + self.weak_discarded))
        out = {"policy": self.policy, "n": int(self.correct.size), "accuracy": self.accuracy,
               "accuracy_se": float(np.std(self.correct) / math.sqrt(max(1, self.correct.size))),
               "mean_strong_tokens": self.mean_strong_tokens,
               "mean_weak_kept": float(np.mean(self.weak_kept)),
               "mean_weak_discarded": float(np.mean(self.weak_discarded)),
               "mean_strong_calls": float(np.mean(self.strong_calls)),
               "mean_steps": float(np.mean(self.steps)),
               "target_token_frac": float(np.sum(self.strong_tokens) / tot) if tot else 0.0}
        if strong_only_tokens:
            out["strong_share"] = self.mean_strong_tokens / strong_only_tokens
        return out


# --------------------------------------------------------------------------------------------
def _check_n_seed(n: Any, seed: Any) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"The 'n' parameter must be an integer >= 1. Got {n!r} instead.",
                         field="n")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.",
                         field="seed")
    return int(n), int(seed)


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
    """

    def __init__(self, weak_accuracy: float = RELEASE_ENDPOINTS["weak_accuracy"],
                 strong_accuracy: float = RELEASE_ENDPOINTS["strong_accuracy"],
                 weak_tokens: float = RELEASE_ENDPOINTS["weak_tokens"],
                 strong_tokens: float = RELEASE_ENDPOINTS["strong_tokens"],
                 score_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.score_shift = score_shift
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
            tot += float(np.mean(p[j] ** pools.values["lengths"][o:o + c]))
        return tot / pools.n_problems

    def _fit_delta(self, target: float) -> float:
        lo, hi = -15.0, 15.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self._expected_acc(mid) < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def fit(self, pools: ScorePools | None = None) -> CalibratedSimulator:
        """Fit δ_w, δ_s (accuracy endpoints) and token scales; ``None`` uses the bundled pools."""
        from trimpomdp._validate import nonneg_float, unit_float

        for name in ("weak_accuracy", "strong_accuracy"):
            v = unit_float(getattr(self, name), name)
            if not 0.0 < v < 1.0:
                raise InputError(f"The '{name}' parameter must be in (0, 1). Got {v!r} instead.",
                                 field=name)
        nonneg_float(self.weak_tokens, "weak_tokens", strict=True)
        nonneg_float(self.strong_tokens, "strong_tokens", strict=True)
        self.pools_ = ScorePools.load() if pools is None else pools
        P = self.pools_
        a = (P.n_correct + 0.5) / (P.n_total + 1.0)
        self._base_logit = _logit(a)
        lens = P.values["lengths"]
        self._mean_len = np.array([lens[o:o + c].mean() for o, c in
                                   zip(P.offsets["lengths"], P.counts["lengths"])])
        self.delta_w_ = self._fit_delta(float(self.weak_accuracy))
        self.delta_s_ = self._fit_delta(float(self.strong_accuracy))
        tok = P.values["step_tokens"]
        mean_tok = np.array([tok[o:o + c].mean() for o, c in
                             zip(P.offsets["step_tokens"], P.counts["step_tokens"])])
        per_problem = float(np.mean(self._mean_len * mean_tok))
        self.scale_w_ = float(self.weak_tokens) / per_problem
        self.scale_s_ = float(self.strong_tokens) / per_problem
        self.p_weak_ = self._solution_acc(self.delta_w_) ** (1.0 / self._mean_len)
        self.p_strong_ = self._solution_acc(self.delta_s_) ** (1.0 / self._mean_len)
        sh = np.asarray(self.score_shift, dtype=float)
        if sh.shape != (3,) or not np.all(np.isfinite(sh)):
            raise InputError(f"The 'score_shift' parameter must be 3 finite numbers (d_ok, d_err, "
                             f"d_post). Got {self.score_shift!r} instead.", field="score_shift")
        self.score_shift_ = tuple(float(x) for x in sh)
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
        n, seed = _check_n_seed(n, seed)
        rng = np.random.default_rng([seed, 20260123])
        P = self.pools_
        prob = rng.integers(0, P.n_problems, n)
        L = P.draw("lengths", prob, rng.random((n, 1)))[:, 0].clip(1, T_MAX)
        shape = (n, T_MAX)

        def tok(scale: float) -> np.ndarray:
            raw = P.draw("step_tokens", prob, rng.random(shape))
            return np.maximum(1, np.rint(raw * scale)).astype(np.int64)

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


class NaiveSimulator:
    """The TRIM POMDP itself as a trace generator (DESIGN.md §2's warning; for comparison)."""

    def __init__(self, model: TrimModel, *, weak_tokens: int | None = None,
                 strong_tokens: int | None = None) -> None:
        self.model = model
        self.weak_tokens = int(weak_tokens or model.future_tokens)
        self.strong_tokens = int(strong_tokens or model.future_tokens)

    def scenario(self, n: int, seed: int = 0) -> Scenario:
        """Draw ``n`` problems: common p_w/p_s, L from the hazard, scores from P(o | c)."""
        n, seed = _check_n_seed(n, seed)
        m = self.model
        rng = np.random.default_rng([seed, 20260124])
        h = m.hazard
        surv = np.concatenate([[1.0], np.cumprod(1.0 - h[1:])])
        pmf = np.array([surv[k - 1] * h[k] if k >= 1 else 0.0 for k in range(len(h))])
        pmf = pmf / pmf.sum()  # P(solution has k steps), k = 0..max_steps
        L = rng.choice(len(pmf), size=n, p=pmf).clip(1, T_MAX)
        k = round(1.0 / m.bin_size)
        marg = m.obs_probs.reshape(3, k, k).sum(axis=1)  # P(current bin | class)
        shape = (n, T_MAX)

        def scores(c: int) -> np.ndarray:
            b = rng.choice(k, size=shape, p=marg[c] / marg[c].sum())
            return np.clip((b + rng.random(shape)) * m.bin_size, 0.0, 1.0)

        arrays = {"u_w": rng.random(shape), "u_s": rng.random(shape),
                  "n_w": np.full(shape, self.weak_tokens), "n_s": np.full(shape, self.strong_tokens)}
        for pre in ("sc", "ss"):
            arrays[f"{pre}_ok"], arrays[f"{pre}_post"], arrays[f"{pre}_err"] = (scores(0),
                                                                               scores(1), scores(2))
        return Scenario(L=L.astype(np.int64), p_w=np.full(n, m.p_weak), p_s=np.full(n, m.p_strong),
                        problem=np.zeros(n, np.int64), seed=seed, source="naive", **arrays)


def load_simulator(pools: str | os.PathLike[str] | None = None, **params: Any
                   ) -> CalibratedSimulator:
    """The calibrated simulator on the bundled (or given) pools, with the bundled score shifts.

    The shifts come from ``data/sim/calibration_math500.json`` (written by
    ``benchmarks/calibration.py --fit``) unless ``score_shift`` is passed.
    """
    if "score_shift" not in params:
        from trimpomdp._io import read_json
        from trimpomdp.resources import resource_path

        try:
            doc = check_envelope(read_json(resource_path("data", CALIBRATION_FILE)),
                                 "sim_calibration", CALIBRATION_FILE)
            params["score_shift"] = tuple(doc["score_shift"])
        except InputError:
            import warnings

            warnings.warn(f"{CALIBRATION_FILE} not found: the simulator runs without score "
                          "shifts (uncalibrated cost curve).", stacklevel=2)
    return CalibratedSimulator(**params).fit(None if pools is None else ScorePools.load(pools))


# --------------------------------------------------------------------------------------------
ActFn = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def rollout(sc: Scenario, act: ActFn, name: str = "vectorised") -> RunResult:
    """Run a vectorised policy: ``act(t, idx, score, tokens, final) -> actions`` per step.

    ``idx`` are the still-running problems; ``score``/``tokens`` their drafted step. The same
    dynamics as :func:`simulate` (tested to agree), for batched policies (PPO training).
    """
    n = sc.n
    ok = np.ones(n, bool)
    st, wk, wd, calls = (np.zeros(n, np.int64) for _ in range(4))
    for t in range(T_MAX):
        idx = np.nonzero(sc.L > t)[0]
        if idx.size == 0:
            break
        o = ok[idx]
        wok = sc.u_w[idx, t] < sc.p_w[idx]
        score = np.where(o, np.where(wok, sc.sc_ok[idx, t], sc.sc_err[idx, t]), sc.sc_post[idx, t])
        tok = sc.n_w[idx, t]
        a = np.asarray(act(t, idx, score, tok, sc.L[idx] == t + 1)).astype(bool)
        sok = sc.u_s[idx, t] < sc.p_s[idx]
        ok[idx] = o & np.where(a, sok, wok)
        st[idx] += np.where(a, sc.n_s[idx, t], 0)
        calls[idx] += a
        wd[idx] += np.where(a, tok, 0)
        wk[idx] += np.where(a, 0, tok)
    return RunResult(policy=name, correct=ok, strong_tokens=st, weak_kept=wk, weak_discarded=wd,
                     strong_calls=calls, steps=sc.L.copy())


def simulate(router: StepRouter, sc: Scenario, *, observe_regenerated: bool = False,
             keep_traces: bool = False, progress: bool = False) -> RunResult:
    """Run ``router`` on every problem of ``sc`` (reset per problem), one decide() per step.

    ``observe_regenerated`` passes each strong step's simulated PRM score to the router (the
    release does not). ``keep_traces`` keeps every problem's decision trace.
    """
    from tqdm.auto import tqdm

    from trimpomdp.data.schema import RouteAction

    regen = RouteAction.REGENERATE
    n = sc.n
    wc, sc_ok_all = sc.weak_correct(), sc.strong_correct()
    correct = np.zeros(n, bool)
    st, wk, wd, calls = (np.zeros(n, np.int64) for _ in range(4))
    traces: list[list[dict[str, Any]]] | None = [] if keep_traces else None
    L, pw, ps = sc.L.tolist(), sc.p_w.tolist(), sc.p_s.tolist()
    for i in tqdm(range(n), disable=not progress, desc=getattr(router.policy, "name", "sim")):
        router.reset({"weak_correct": bool(wc[i]), "strong_correct": bool(sc_ok_all[i]),
                      "seed": int(sc.seed) * 1_000_003 + i})
        ok = True
        uw, us, nw, ns = sc.u_w[i].tolist(), sc.u_s[i].tolist(), sc.n_w[i].tolist(), \
            sc.n_s[i].tolist()
        a_ok, a_err, a_post = sc.sc_ok[i], sc.sc_err[i], sc.sc_post[i]
        Li = L[i]
        for t in range(Li):
            wok = uw[t] < pw[i]
            score = float(a_ok[t] if wok else a_err[t]) if ok else float(a_post[t])
            d = router.decide(score, nw[t], t, t == Li - 1)
            if d.action is regen:
                sok = us[t] < ps[i]
                if observe_regenerated and t < Li - 1:
                    s2 = (sc.ss_ok[i, t] if sok else sc.ss_err[i, t]) if ok else sc.ss_post[i, t]
                    router.observe_regenerated(float(s2))
                ok = ok and sok
                st[i] += ns[t]
                calls[i] += 1
                wd[i] += nw[t]
            else:
                ok = ok and wok
                wk[i] += nw[t]
        correct[i] = ok
        if traces is not None:
            traces.append(list(router.trace))
    return RunResult(policy=getattr(router.policy, "name", "policy"), correct=correct,
                     strong_tokens=st, weak_kept=wk, weak_discarded=wd, strong_calls=calls,
                     steps=sc.L.copy(), traces=traces)


def threshold_act(k: float) -> ActFn:
    """Vectorised TRIM-Thr for :func:`rollout`."""
    return lambda t, idx, score, tok, final: score < k


# --------------------------------------------------------------------------------------------
def strong_share(model: TrimModel, lam: float, sc: Scenario, *, belief: str = "filter",
                 strong_only_tokens: float | None = None, solver: Any = None) -> dict[str, Any]:
    """Solve the POMDP at ``lam`` and simulate it on ``sc``: summary with ``strong_share``."""
    from trimpomdp.policies.spec import pomdp_router
    from trimpomdp.pomdp.trim import TrimPOMDP
    from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

    policy = (solver or FiniteHorizonSolver()).solve(TrimPOMDP(model=model, lam=lam))
    if strong_only_tokens is None:
        strong_only_tokens = float(np.mean(np.where(np.arange(T_MAX)[None, :] < sc.L[:, None],
                                                    sc.n_s, 0).sum(axis=1)))
    res = simulate(pomdp_router(policy, belief=belief, record=False), sc)
    return res.summary(strong_only_tokens)


def lambda_for_budget(model: TrimModel, budget_share: float, *,
                      simulator: CalibratedSimulator | NaiveSimulator | None = None,
                      belief: str = "filter", n: int = 2000, seed: int = 0,
                      lam_max: float = 5.0, tol: float = 1e-3, max_iter: int = 30) -> float:
    """Smallest λ whose simulated strong-token share (C̄ / C̄ strong-only) is ≤ ``budget_share``.

    Bisection over λ with the exact solver on one simulated scenario (``n`` problems, ``seed``);
    the share falls as λ grows. Returns 0.0 if λ = 0 already meets the budget; raises InputError
    if even ``lam_max`` overspends. The result is within ``tol`` of the crossing point.

    >>> from trimpomdp import load_model
    >>> lam = lambda_for_budget(load_model(), 0.2, n=200, tol=0.05)  # doctest: +SKIP
    """
    from trimpomdp._validate import unit_float

    b = unit_float(budget_share, "budget_share")
    sim = simulator if simulator is not None else load_simulator()
    sc = sim.scenario(n, seed)
    so = float(np.mean(np.where(np.arange(T_MAX)[None, :] < sc.L[:, None], sc.n_s, 0)
                       .sum(axis=1)))

    def share(lam: float) -> float:
        return float(strong_share(model, lam, sc, belief=belief, strong_only_tokens=so)
                     ["strong_share"])

    if share(0.0) <= b:
        return 0.0
    hi = float(lam_max)
    if share(hi) > b:
        raise InputError(f"no λ <= {lam_max:g} keeps the strong-token share <= {b:g}; raise "
                         "lam_max.", field="budget_share")
    lo = 0.0
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        if share(mid) <= b:
            hi = mid
        else:
            lo = mid
    return hi


__all__ = ["CalibratedSimulator", "NaiveSimulator", "RunResult", "Scenario", "ScorePools",
           "lambda_for_budget", "load_simulator", "rollout", "simulate", "strong_share",
           "threshold_act"]
