"""The solved TRIM-POMDP policy: action and Q-values at any (step, tokens, belief) in closed form.

Holds, for every step t, the linear pieces of the continuation values W_{continue,t}(b0) and
W_{regenerate,t}(1 − b1) (see :mod:`trimpomdp.solvers.finite_horizon`). Saved as versioned JSON
with the model it was solved for and λ.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp._io import check_envelope, envelope, read_json, write_json
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel
from trimpomdp.pomdp.trim import CONTINUE, REGENERATE, TrimPOMDP

KIND = "trim_policy"
Lines = tuple[np.ndarray, np.ndarray]


def lines_to_alphas(u: np.ndarray, v: np.ndarray, action: int, cost: float) -> np.ndarray:
    """Alpha vectors (K, 3) of lines u + v s, with s = b0 (continue) or 1 − b1 (regenerate)."""
    if action == CONTINUE:
        return np.column_stack([u + v, u, u])
    return np.column_stack([u + v - cost, u - cost, u + v - cost])


def model_fingerprint(model: TrimModel) -> str:
    """Short sha256 of the model's parameters (identifies the model a policy was solved for)."""
    d = model.to_dict()
    for k in ("trimpomdp_version", "provenance", "name"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TrimPolicy:
    """Optimal TRIM-POMDP policy for one λ over all steps, token counts and beliefs."""

    pomdp: TrimPOMDP
    continue_lines: tuple[Lines, ...]
    regenerate_lines: tuple[Lines, ...]

    def __post_init__(self) -> None:
        n = self.pomdp.n_steps
        if len(self.continue_lines) != n or len(self.regenerate_lines) != n:
            raise InputError(f"a policy needs line sets for all {n} steps. Got "
                             f"{len(self.continue_lines)} and {len(self.regenerate_lines)} instead.")

    @property
    def lam(self) -> float:
        """Cost per strong token the policy was solved for."""
        return self.pomdp.lam

    @property
    def model(self) -> TrimModel:
        """The fitted TRIM model the policy was solved for."""
        return self.pomdp.model

    def q_values(self, step: int, tokens: float, belief: Any, *, final: bool = False
                 ) -> np.ndarray:
        """[Q(continue), Q(regenerate)] at a step with ``tokens`` tokens and ``belief``.

        ``final=True`` when the current step is the solution's last (it holds the answer).
        """
        b = self.pomdp.check_query(step, tokens, belief, final=final)
        return self.q_values_unchecked(step, float(tokens), b, final)

    def q_values_unchecked(self, step: int, tokens: float, b: np.ndarray, final: bool = False
                           ) -> np.ndarray:
        """:meth:`q_values` without input checks, for hot loops that validated already."""
        if final:
            return self.pomdp.final_reward(tokens) @ b
        uc, vc = self.continue_lines[step]
        ur, vr = self.regenerate_lines[step]
        qc = float(np.max(uc + vc * b[0]))
        qr = float(np.max(ur + vr * (1.0 - b[1]))) - self.pomdp.lam * tokens
        return np.array([qc, qr])

    def action(self, step: int, tokens: float, belief: Any, *, final: bool = False) -> int:
        """0 = continue, 1 = regenerate (ties go to continue, the cheaper action)."""
        q = self.q_values(step, tokens, belief, final=final)
        return int(q[REGENERATE] > q[CONTINUE])

    def value(self, step: int, tokens: float, belief: Any, *, final: bool = False) -> float:
        """Optimal expected reward-to-go."""
        return float(np.max(self.q_values(step, tokens, belief, final=final)))

    def alphas(self, step: int, tokens: float | None = None) -> np.ndarray:
        """Alpha vectors (K, 3) of the value at ``step`` for ``tokens`` (default future tokens)."""
        n = self.model.future_tokens if tokens is None else tokens
        uc, vc = self.continue_lines[step]
        ur, vr = self.regenerate_lines[step]
        return np.vstack([lines_to_alphas(uc, vc, CONTINUE, 0.0),
                          lines_to_alphas(ur, vr, REGENERATE, self.lam * n)])

    def q_values_batch(self, step: int, tokens: Any, beliefs: Any, final: Any = False
                       ) -> np.ndarray:
        """[Q(continue), Q(regenerate)] (m, 2) for many beliefs (m, 3) at one step, unchecked.

        ``tokens`` and ``final`` are scalars or (m,) arrays; same formula as :meth:`q_values`.
        """
        B = np.asarray(beliefs, float).reshape(-1, 3)
        m = B.shape[0]
        n = np.broadcast_to(np.asarray(tokens, float), (m,))
        fin = np.broadcast_to(np.asarray(final, bool), (m,))
        uc, vc = self.continue_lines[step]
        ur, vr = self.regenerate_lines[step]
        q = np.empty((m, 2))
        q[:, 0] = (uc[None, :] + vc[None, :] * B[:, :1]).max(axis=1)
        q[:, 1] = (ur[None, :] + vr[None, :] * (1.0 - B[:, 1:2])).max(axis=1) - self.lam * n
        if fin.any():
            rf = np.stack([self.pomdp.final_reward(x) for x in n[fin]])  # (k, 2, 3)
            q[fin] = np.einsum("kac,kc->ka", rf, B[fin])
        return q

    # ----- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON-ready form, including the model and λ (provenance)."""
        return envelope(KIND, {
            "lam": self.lam, "model_fingerprint": model_fingerprint(self.model),
            "model": self.model.to_dict(),
            "continue_lines": [[u.tolist(), v.tolist()] for u, v in self.continue_lines],
            "regenerate_lines": [[u.tolist(), v.tolist()] for u, v in self.regenerate_lines]})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrimPolicy:
        """Read a policy file; a file from another schema version or model raises InputError."""
        doc = check_envelope(read_json(path), KIND, path)
        try:
            model = TrimModel.from_dict(doc["model"], path)
            if doc["model_fingerprint"] != model_fingerprint(model):
                raise InputError("model_fingerprint does not match the embedded model (file "
                                 "edited or written by an incompatible version)", path=path,
                                 field="model_fingerprint")
            pomdp = TrimPOMDP(model=model, lam=doc["lam"])

            def lines(key: str) -> tuple[Lines, ...]:
                return tuple((np.asarray(u, float), np.asarray(v, float)) for u, v in doc[key])

            return cls(pomdp=pomdp, continue_lines=lines("continue_lines"),
                       regenerate_lines=lines("regenerate_lines"))
        except KeyError as exc:
            raise InputError("missing required field", path=path, field=str(exc.args[0])) from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"malformed policy file ({exc})", path=path) from None
