"""The TRIM POMDP for one cost per strong token λ, exactly as the release defines it.

Hidden class c ∈ {S0, S1, S2}; observed step t (0-based), current-step tokens n and a final-step
marker. Actions: 0 = continue, 1 = regenerate. From step t the solution ends (the next state is the
final marker) with the hazard h(t + 1). On the final marker, continue pays R if c = S0, regenerate
pays p_s·R if c ∈ {S0, S2}. Every regenerate costs λ·n (n = the current step's tokens; later steps
use ``future_tokens``). See DESIGN.md §2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp._validate import nonneg_float, prob_vector
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel
from trimpomdp.pomdp.dynamics import (
    CONTINUE,
    REGENERATE,
    continue_transition,
    regenerate_transition,
)
from trimpomdp.pomdp.tabular import TabularPOMDP


@dataclass(frozen=True, slots=True, kw_only=True)
class TrimPOMDP:
    """A :class:`TrimModel` plus the cost per strong token ``lam`` (reward units per token)."""

    model: TrimModel
    lam: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", nonneg_float(self.lam, "lambda"))

    @property
    def n_steps(self) -> int:
        """Number of non-final steps (0 .. n_steps - 1)."""
        return self.model.max_steps

    def transition_matrix(self, action: int) -> np.ndarray:
        """T[c, c'] over (S0, S1, S2) for ``action`` (0 continue, 1 regenerate)."""
        if action == CONTINUE:
            return continue_transition(self.model.p_weak)
        if action == REGENERATE:
            return regenerate_transition(self.model.p_weak, self.model.p_strong)
        raise InputError(f"action must be 0 (continue) or 1 (regenerate). Got {action!r} instead.",
                         field="action")

    def hazard_after(self, step: int) -> float:
        """Probability that the solution ends right after ``step`` (h(step + 1))."""
        return float(self.model.hazard[step + 1])

    def step_reward(self, tokens: float) -> np.ndarray:
        """Immediate reward vectors R[a, c] at a non-final step with ``tokens`` tokens."""
        return np.array([np.zeros(3), np.full(3, -self.lam * tokens)])

    def final_reward(self, tokens: float) -> np.ndarray:
        """Immediate reward vectors R[a, c] on the final marker with ``tokens`` tokens."""
        R, ps = self.model.reward, self.model.p_strong
        return np.array([[R, 0.0, 0.0], [ps * R - self.lam * tokens, -self.lam * tokens,
                                         ps * R - self.lam * tokens]])

    def check_query(self, step: int, tokens: float, belief: object, *, final: bool = False,
                    atol: float = 1e-4) -> np.ndarray:
        """Validate a (step, tokens, belief) query; returns the renormalised belief."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not (
                0 <= step < self.n_steps):
            raise InputError(f"step must be an integer in [0, {self.n_steps - 1}]. Got {step!r} "
                             "instead.", field="step")
        nonneg_float(tokens, "tokens", strict=True)
        return prob_vector(belief, "belief", atol=atol)

    def to_tabular(self, step: int = 0, tokens: float | None = None, belief: object = (1, 0, 0),
                   *, final: bool = False):
        """This instance as a generic :class:`~trimpomdp.pomdp.tabular.TabularPOMDP` from a start.

        States: (class, step) for the start step onwards, (class, final marker), and an absorbing
        end state. Observations: ``o<bin>`` on a step, ``f<bin>`` on the final step (the final
        marker is observed, as in the model) and ``end``. The start step costs ``tokens`` per
        regenerate, later steps ``future_tokens``. Export it with ``write_cassandra`` to check
        our solver against SARSOP's ``pomdpsol``.
        """

        m = self.model
        n0 = float(m.future_tokens if tokens is None else tokens)
        b = self.check_query(step, n0, belief, final=final)
        steps = [] if final else list(range(step, self.n_steps))
        names = [f"S{c}_t{t}" for t in steps for c in range(3)] + [f"S{c}_final" for c in range(3)]
        names.append("end")
        # observations: PRM bin on a step, PRM bin on the final step (the marker is observed),
        # and the end state's own observation
        S, O = len(names), 2 * m.n_obs + 1
        idx = {t: 3 * i for i, t in enumerate(steps)}
        fin, end = 3 * len(steps), S - 1
        T = np.zeros((2, S, S))
        R = np.zeros((2, S))
        for t in steps:
            n = n0 if t == step else m.future_tokens
            h = self.hazard_after(t)
            for a in (CONTINUE, REGENERATE):
                Ta = self.transition_matrix(a)
                R[a, idx[t]:idx[t] + 3] = self.step_reward(n)[a]
                for c in range(3):
                    T[a, idx[t] + c, fin:fin + 3] += h * Ta[c]
                    if h < 1.0:
                        T[a, idx[t] + c, idx[t + 1]:idx[t + 1] + 3] += (1.0 - h) * Ta[c]
        nF = n0 if final else m.future_tokens
        R[:, fin:fin + 3] = self.final_reward(nF)
        T[:, fin:fin + 3, end] = 1.0
        T[:, end, end] = 1.0
        Obs = np.zeros((2, S, O))
        Obs[:, :fin, :m.n_obs] = m.obs_probs[np.arange(fin) % 3]
        Obs[:, fin:end, m.n_obs:2 * m.n_obs] = m.obs_probs
        Obs[:, end, 2 * m.n_obs] = 1.0
        b0 = np.zeros(S)
        start = fin if final else idx[step]
        b0[start:start + 3] = b
        terminal = np.zeros(S, dtype=bool)
        terminal[end] = True
        return TabularPOMDP(T=T, O=Obs, R=R, discount=m.discount, b0=b0, terminal=terminal,
                            state_names=tuple(names), action_names=("continue", "regenerate"),
                            observation_names=tuple([f"o{i}" for i in range(m.n_obs)]
                                                    + [f"f{i}" for i in range(m.n_obs)]
                                                    + ["end"]),
                            name=f"trim_lam{self.lam:g}_t{step}_n{n0:g}{'_final' if final else ''}")
