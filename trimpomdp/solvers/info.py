"""What a generic POMDP solve did: time, backups, vectors, bounds at b0 and how the gap closed.

Returned beside the policy by every ``solve_info`` (the NativeSARSOP.jl convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class SolveInfo:
    """Result summary of a solve: CPU seconds, iterations, backups, vectors and bounds at b0.

    ``gap_trace`` holds (cpu_seconds, lower, upper) samples taken while solving.
    """

    seconds: float
    iterations: int
    backups: int
    n_alpha: int
    lower: float
    upper: float
    gap_trace: tuple[tuple[float, float, float], ...] = ()
    solver: str = ""
    converged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.iterations < 0 or self.backups < 0 or self.n_alpha < 0:
            raise ValueError("SolveInfo counts and seconds must be non-negative")

    @property
    def gap(self) -> float:
        """upper − lower at the start belief."""
        return self.upper - self.lower

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the trace)."""
        return {"solver": self.solver, "lower": self.lower, "upper": self.upper,
                "gap": self.gap, "seconds": self.seconds, "iterations": self.iterations,
                "backups": self.backups, "alphas": self.n_alpha, "converged": self.converged}
