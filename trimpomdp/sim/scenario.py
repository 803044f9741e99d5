"""Pre-drawn randomness of simulated problems (common random numbers) and run results."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scenario:
    """Pre-drawn randomness for ``n`` problems (arrays (n,) or (n, horizon)); see the module docstring.

    ``sc_*`` are draft-step scores for a correct step on a correct prefix (ok), a first wrong
    step (err) and a step after an error (post); ``ss_*`` the same for strong steps.

    ``n_w`` / ``n_s`` are the draft's / the strong step's tokens. Optional ``n_w_err``,
    ``n_w_post`` (and ``n_s_err``, ``n_s_post``) make them depend on the draft's class: where
    given, an err / post draft has ``n_w_err`` / ``n_w_post`` tokens and its strong rewrite
    ``n_s_err`` / ``n_s_post`` (``None``: the class does not matter, ``n_w`` / ``n_s``).
    Use :meth:`draft_tokens` and :meth:`strong_tokens` to read them.
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
    n_w_err: np.ndarray | None = None
    n_w_post: np.ndarray | None = None
    n_s_err: np.ndarray | None = None
    n_s_post: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.L.shape[0]
        H = self.n_w.shape[1] if self.n_w.ndim == 2 else 0
        if n == 0 or H == 0 or np.any(self.L < 1) or np.any(self.L > H):
            raise InputError(f"L must hold lengths in [1, {H}] (the horizon: the width of the "
                             "step arrays) for n >= 1 problems.", field="L")
        for k in ("u_w", "u_s", "n_w", "n_s", "sc_ok", "sc_err", "sc_post", "n_w_err",
                  "n_w_post", "n_s_err", "n_s_post"):
            v = getattr(self, k)
            if v is not None and v.shape != (n, H):
                raise InputError(f"{k} must have shape ({n}, {H}).", field=k)

    def _by_class(self, base: np.ndarray, err: np.ndarray | None, post: np.ndarray | None,
                  idx: Any, t: int, prefix_ok: Any, wok: Any) -> Any:
        out = base[idx, t]
        if err is None and post is None:
            return out
        e = out if err is None else err[idx, t]
        p = out if post is None else post[idx, t]
        return np.where(prefix_ok, np.where(wok, out, e), p)

    def draft_tokens(self, idx: Any, t: int, prefix_ok: Any, wok: Any) -> Any:
        """Tokens of the drafts of problems ``idx`` at step ``t`` (class: prefix_ok, wok)."""
        return self._by_class(self.n_w, self.n_w_err, self.n_w_post, idx, t, prefix_ok, wok)

    def strong_tokens(self, idx: Any, t: int, prefix_ok: Any, wok: Any) -> Any:
        """Tokens of the strong rewrite of those drafts."""
        return self._by_class(self.n_s, self.n_s_err, self.n_s_post, idx, t, prefix_ok, wok)

    @property
    def horizon(self) -> int:
        """Steps per problem at most (the width of the step arrays)."""
        return int(self.n_w.shape[1])

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


def check_n_seed(n: Any, seed: Any) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"The 'n' parameter must be an integer >= 1. Got {n!r} instead.",
                         field="n")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.",
                         field="seed")
    return int(n), int(seed)


__all__ = ["RunResult", "Scenario", "check_n_seed"]
