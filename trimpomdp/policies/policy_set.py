"""PolicySet: TRIM policies solved for many λ, saved as one folder with an index.

Select by λ (nearest solved value) or by a token budget via a measured cost per λ.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from trimpomdp._io import check_envelope, envelope, read_json, write_json
from trimpomdp.errors import InputError
from trimpomdp.evaluation.simplex import simplex_grid
from trimpomdp.model import TrimModel
from trimpomdp.policies.trim_policy import TrimPolicy
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

INDEX = "policy_set.json"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Policies indexed by λ (ascending), with per-λ summary rows."""

    policies: tuple[TrimPolicy, ...]
    summary: tuple[dict[str, Any], ...]

    @property
    def lambdas(self) -> list[float]:
        """The solved λ values, ascending."""
        return [p.lam for p in self.policies]

    def select(self, lam: float) -> TrimPolicy:
        """The policy whose λ is nearest to ``lam``."""
        return min(self.policies, key=lambda p: abs(p.lam - lam))

    def save(self, folder: str | os.PathLike[str]) -> None:
        """One policy file per λ plus ``policy_set.json`` (written last, atomically)."""
        folder = Path(folder)
        files = []
        for p in self.policies:
            name = f"policy_lam{p.lam:.6f}.json"
            p.save(folder / name)
            files.append(name)
        write_json(folder / INDEX, envelope("policy_set", {"lambdas": self.lambdas,
                                                           "files": files,
                                                           "summary": list(self.summary)}))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> PolicySet:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        doc = check_envelope(read_json(folder / INDEX), "policy_set", folder / INDEX)
        try:
            pols = tuple(TrimPolicy.load(folder / f) for f in doc["files"])
            return cls(pols, tuple(doc.get("summary", [])))
        except KeyError as exc:
            raise InputError("missing required field", path=folder / INDEX,
                             field=str(exc.args[0])) from None


def solve_sweep(model: TrimModel, lambdas: Iterable[float], *, tol: float = 1e-5,
                progress: bool = True, on_policy: Callable[[TrimPolicy], dict] | None = None
                ) -> PolicySet:
    """Solve the TRIM POMDP for each λ (tqdm progress); ``on_policy`` adds summary columns."""
    lams = sorted({float(x) for x in lambdas})
    if not lams:
        raise InputError("lambdas must hold at least one value. Got none instead.")
    solver = FiniteHorizonSolver(tol=tol)
    pols, rows = [], []
    for lam in tqdm(lams, desc="solving λ", unit="λ", disable=not progress):
        pol, info = solver.solve_info(TrimPOMDP(model=model, lam=lam))
        row = {"lambda": lam, "seconds": round(info.seconds, 4), "alpha_vectors": info.n_alpha,
               "value_t0": round(pol.value(0, model.future_tokens, [1, 0, 0]), 6),
               "regen_share_grid": round(regenerate_share(pol), 4)}
        if on_policy is not None:
            row.update(on_policy(pol))
        pols.append(pol)
        rows.append(row)
    return PolicySet(tuple(pols), tuple(rows))


def regenerate_share(policy: TrimPolicy, resolution: int = 20) -> float:
    """Share of (step, belief-grid) cells where the policy regenerates at n = future_tokens.

    A cheap, simulation-free summary of how aggressive a policy is.
    """


    grid = simplex_grid(resolution)
    n = policy.model.future_tokens
    acts = [np.diff(policy.q_values_batch(t, n, grid), axis=1) > 0
            for t in range(policy.pomdp.n_steps)]
    return float(np.mean(acts))
