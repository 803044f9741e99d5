"""Closed-loop strong-token-share budget: a controller that moves λ so the realised share holds.

The open-loop budget (``trim.strong_token_share``) picks λ once, by simulation: if the user's
PRM, models or questions differ from the simulator's (a mis-calibrated model, drift), the share
it delivers misses. :class:`ShareController` instead measures the share the served requests
actually realise and corrects λ:

- **Realised share** of a request = its strong tokens / its *strong-only tokens*, the tokens a
  strong-only answer would have cost, estimated as the answer's own tokens step by step: a
  rewritten step's strong tokens, a kept step's weak tokens (discarded drafts are not counted).
  This is the served counterpart of the simulator's C̄ / C̄ strong-only (docs/serve.md). The
  window share is Σ strong / Σ strong-only over the last ``window`` requests (token-weighted,
  as C̄ / C̄ is a ratio of means).
- **Control law**: a PI controller in u = log λ. Every finished request adds its own error
  ``(strong - target · strong_only) / mean strong_only`` (≈ its share minus the target) times
  ``ki`` to the integral; the proportional part is ``kp`` × (window share − target). A share
  above the target raises λ (strong tokens dearer). u is clamped to [log λ_min, log λ_max], the
  integral with it (no wind-up).
- **Quantised λ**: the λ applied is u rounded to a grid of step ``quantum`` in log λ (2 %
  steps by default), so the POMDP is re-solved only at grid values (cached by the caller).

Pure bookkeeping, no I/O: :class:`~trimpomdp.serve.budget.BudgetRouters` feeds it and solves.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings:
    """Tuning of :class:`ShareController` (defaults: the ones benchmarks/closed_loop.py uses)."""

    target: float
    #: requests in the sliding window (the measured share and the proportional term)
    window: int = 100
    #: integral gain per request, in log λ per unit of share error
    ki: float = 0.1
    #: proportional gain on the window error, in log λ per unit of share error
    kp: float = 0.5
    lam_min: float = 1e-3
    lam_max: float = 10.0
    #: grid step in log λ of the λ values actually solved
    quantum: float = 0.02

    def __post_init__(self) -> None:
        if not (isinstance(self.target, (int, float)) and 0.0 < self.target < 1.0):
            raise ValueError(f"target share must be in (0, 1); got {self.target!r}")
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"window must be an int >= 1; got {self.window!r}")
        if not (0.0 < self.lam_min < self.lam_max):
            raise ValueError("need 0 < lam_min < lam_max")
        if self.ki < 0 or self.kp < 0 or self.quantum <= 0:
            raise ValueError("gains must be >= 0 and the quantum > 0")


class ShareController:
    """PI control of log λ from the realised strong-token share (see the module docstring)."""

    def __init__(self, settings: ControllerSettings, initial_lam: float) -> None:
        self.s = settings
        self._lo, self._hi = math.log(settings.lam_min), math.log(settings.lam_max)
        self.integral = self._clamp(math.log(max(initial_lam, settings.lam_min)))
        self.u = self.integral
        self.window: deque[tuple[float, float]] = deque(maxlen=settings.window)
        self._sum_strong = 0.0
        self._sum_only = 0.0
        #: requests fed so far
        self.n = 0

    def _clamp(self, u: float) -> float:
        return min(self._hi, max(self._lo, u))

    @property
    def lam(self) -> float:
        """The controller's λ (before quantisation)."""
        return math.exp(self.u)

    @property
    def lam_quantised(self) -> float:
        """λ on the solve grid (what the caller should route with)."""
        q = self.s.quantum
        return float(f"{math.exp(round(self.u / q) * q):.6g}")

    @property
    def window_share(self) -> float | None:
        """Σ strong / Σ strong-only over the window (None before any token was counted)."""
        return None if self._sum_only <= 0 else self._sum_strong / self._sum_only

    def update(self, strong_tokens: float, strong_only_tokens: float) -> float:
        """Feed one finished request; returns the new quantised λ."""
        strong, only = float(strong_tokens), float(strong_only_tokens)
        if len(self.window) == self.window.maxlen:
            old_s, old_o = self.window[0]
            self._sum_strong -= old_s
            self._sum_only -= old_o
        self.window.append((strong, only))
        self._sum_strong += strong
        self._sum_only += only
        self.n += 1
        if self._sum_only <= 0:  # nothing decoded yet: no information
            return self.lam_quantised
        mean_only = self._sum_only / len(self.window)
        e_req = (strong - self.s.target * only) / mean_only
        e_win = self._sum_strong / self._sum_only - self.s.target
        self.integral = self._clamp(self.integral + self.s.ki * e_req)
        self.u = self._clamp(self.integral + self.s.kp * e_win)
        return self.lam_quantised


def strong_only_tokens(record: dict) -> int:
    """Estimated tokens of a strong-only answer of a loop record: per step, the rewrite's tokens
    if the strong model wrote it, the kept draft's otherwise."""
    return sum(int(s.get("strong_tokens", 0)) if s.get("source") == "strong"
               else int(s.get("draft_tokens", 0)) for s in record.get("steps", ()))


__all__ = ["ControllerSettings", "ShareController", "strong_only_tokens"]
