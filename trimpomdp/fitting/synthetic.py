"""A known TRIM process that writes routed step traces, for recovery checks of ``fit-model``.

Unlike the bundled pair: p_w = 0.80, p_s = 0.93, a horizon of 20 steps with longer solutions
cut there (censored), and PRM scores drawn per class from Beta distributions, so that the
observation o_t = (min of the kept previous scores, draft score t) is computed from a score
sequence exactly as for real traces. A random share ``explore`` of steps is regenerated (the
``explore:P`` policy), the strong rewrite is right w.p. p_s and gets a PRM score when a later
step exists (as in ``run``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trimpomdp.data.schema import StepTrace
from trimpomdp.fitting.model_fit import fit_trim_model
from trimpomdp.model import TrimModel
from trimpomdp.observation.binned import bin_index
from trimpomdp.pomdp.dynamics import hazard_from_pmf, length_pmf, regenerate_transition
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

S0, S1, S2 = 0, 1, 2


def _default_length_pmf() -> np.ndarray:
    """P(T = k), k = 0..40: a discretised gamma-like law peaking near 7 steps."""
    k = np.arange(41, dtype=float)
    w = np.where(k >= 2, np.clip(k - 1.0, 0.0, None) ** 2.2 * np.exp(-(k - 1.0) / 3.0), 0.0)
    return w / w.sum()


@dataclass(frozen=True)
class SyntheticTrimProcess:
    """The true parameters; :meth:`sample` draws traces and their true classes."""

    p_weak: float = 0.80
    p_strong: float = 0.93
    max_steps: int = 20
    length_pmf: np.ndarray = field(default_factory=_default_length_pmf)
    #: Beta(a, b) of the draft's PRM score per class S0, S1, S2
    score_beta: tuple[tuple[float, float], ...] = ((6.0, 1.2), (2.0, 2.5), (1.3, 3.0))
    draft_tokens: tuple[int, float] = (20, 30.0)   # offset + Poisson mean
    strong_tokens: tuple[int, float] = (25, 35.0)

    def censored_length_pmf(self) -> np.ndarray:
        """P(length = k), k = 0..max_steps, after the cut at max_steps."""
        p = np.asarray(self.length_pmf, float)
        out = np.zeros(self.max_steps + 1)
        out[:self.max_steps] = p[:self.max_steps]
        out[self.max_steps] = p[self.max_steps:].sum()
        return out

    def sample(self, n: int, *, explore: float = 0.3, step_labels: bool = False,
               outcomes: bool = True, random_state: Any = None
               ) -> tuple[list[StepTrace], list[np.ndarray]]:
        """``n`` routed traces and the true class of each step."""
        rng = np.random.default_rng(random_state)
        pmf = np.asarray(self.length_pmf, float)
        lengths = rng.choice(pmf.size, size=n, p=pmf / pmf.sum())
        R = regenerate_transition(self.p_weak, self.p_strong)
        traces, classes = [], []
        for i, T in enumerate(lengths):
            L = int(min(T, self.max_steps))
            cut = T > self.max_steps
            c = np.empty(L, dtype=int)
            acts = (rng.random(L) < explore).astype(int)
            strong_ok = np.zeros(L, dtype=bool)
            c[0] = S0 if rng.random() < self.p_weak else S2
            for t in range(1, L):
                prev = c[t - 1]
                if acts[t - 1]:
                    if prev == S1:
                        c[t] = S1
                    else:
                        c[t] = rng.choice(3, p=R[S0])
                        strong_ok[t - 1] = c[t] != S1
                else:
                    c[t] = S1 if prev != S0 else (S0 if rng.random() < self.p_weak else S2)
            if acts[-1] and c[-1] != S1:
                strong_ok[-1] = rng.random() < self.p_strong
            scores = np.array([rng.beta(*self.score_beta[ci]) for ci in c])
            strong_scores: list[float | None] = [None] * L
            for t in range(L - 1):
                if acts[t]:
                    a, b = self.score_beta[S0] if strong_ok[t] else self.score_beta[S2]
                    strong_scores[t] = float(rng.beta(a, b))
            if cut:
                correct = False
            elif acts[-1]:
                correct = bool(c[-1] != S1 and strong_ok[-1])
            else:
                correct = bool(c[-1] == S0)
            dt = self.draft_tokens[0] + rng.poisson(self.draft_tokens[1], L)
            st = np.where(acts == 1, self.strong_tokens[0] + rng.poisson(self.strong_tokens[1], L),
                          0)
            labels = None
            if step_labels:
                labels = tuple(int(ci == S0 or (ci == S1 and _draft_ok(rng, self.p_weak)))
                               for ci in c)
            traces.append(StepTrace(
                problem_id=f"syn{i:06d}", scores=tuple(float(x) for x in scores),
                tokens=tuple(int(x) for x in dt), correct=correct if outcomes else None,
                labels=labels, actions=tuple(int(a) for a in acts),
                strong_tokens=tuple(int(x) for x in st), strong_scores=tuple(strong_scores),
                max_steps=self.max_steps if cut else None))
            classes.append(c)
        return traces, classes


def _draft_ok(rng: np.random.Generator, p: float) -> bool:
    """Correctness of a draft after an earlier error (a label only: S1 either way)."""
    return bool(rng.random() < p)


def empirical_class_probs(traces: list[StepTrace], classes: list[np.ndarray],
                          bin_size: float = 0.05) -> np.ndarray:
    """Per-class binned distribution (3, K²) of the observations of the true classes."""
    k = round(1.0 / bin_size)
    counts = np.zeros((3, k * k))
    for tr, c in zip(traces, classes):
        b = bin_index(tr.observations(), bin_size)
        np.add.at(counts, (c, b), 1.0)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)


def total_variation(p: Any, q: Any) -> float:
    """0.5 * sum |p - q| of two distributions on the same support."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())




def true_model(proc: SyntheticTrimProcess, traces: list[StepTrace], classes: list[np.ndarray],
               bin_size: float = 0.05) -> TrimModel:
    """The process as a TrimModel: its accuracies, censored length law, mean strong tokens and
    the empirical per-class observation distribution of its true classes."""
    emp = empirical_class_probs(traces, classes, bin_size)
    emp = 0.999 * emp + 0.001 / emp.shape[1]
    pmf = proc.censored_length_pmf()
    return TrimModel(obs_probs=emp, bin_size=bin_size, p_weak=proc.p_weak,
                     p_strong=proc.p_strong,
                     hazard=hazard_from_pmf(pmf[2:].tolist(), min_len=2, max_steps=proc.max_steps),
                     future_tokens=int(proc.strong_tokens[0] + proc.strong_tokens[1]),
                     max_steps=proc.max_steps, name="synthetic-truth")


def simplex_grid(step: float = 0.025) -> np.ndarray:
    """Beliefs (S0, S1, S2) on a regular simplex grid (the release's 0.025 grid: 861 points)."""
    m = round(1.0 / step)
    pts = [(i, j, m - i - j) for i in range(m + 1) for j in range(m + 1 - i)]
    return np.asarray(pts, dtype=float) / m


def policy_disagreement(fitted: TrimModel, truth: TrimModel, *, lams: Any = (0.05, 0.25, 0.5),
                        tokens: Any = (20, 40, 60, 100, 200), margin: float = 0.5,
                        belief_step: float = 0.025) -> dict[str, Any]:
    """Share of (λ, step, tokens, belief) cases where the fitted model's optimal action differs
    from the true model's, among cases where the true Q-values differ by more than ``margin``.

    Both models must share the horizon; steps 0..max_steps-1, non-final.
    """
    B = simplex_grid(belief_step)
    solver = FiniteHorizonSolver()
    n_cases = n_dis = 0
    per_lam = {}
    for lam in lams:
        pt = solver.solve(TrimPOMDP(model=truth, lam=float(lam)))
        pf = solver.solve(TrimPOMDP(model=fitted, lam=float(lam)))
        c = d = 0
        for t in range(min(truth.max_steps, fitted.max_steps)):
            for n in tokens:
                qt = pt.q_values_batch(t, n, B)
                qf = pf.q_values_batch(t, n, B)
                clear = np.abs(qt[:, 1] - qt[:, 0]) > margin
                at = qt[:, 1] > qt[:, 0]
                af = qf[:, 1] > qf[:, 0]
                c += int(clear.sum())
                d += int((clear & (at != af)).sum())
        per_lam[float(lam)] = d / c if c else 0.0
        n_cases += c
        n_dis += d
    return {"cases": n_cases, "disagree": n_dis, "share": n_dis / n_cases if n_cases else 0.0,
            "per_lambda": per_lam, "margin": margin}


def recovery_check(n: int, *, explore: float = 0.3, step_labels: bool = False,
                   random_state: int = 7, n_init: int = 2, emission: str = "auto",
                   lams: Any = (0.05, 0.25, 0.5), process: SyntheticTrimProcess | None = None,
                   p_strong: float | None = None) -> dict[str, Any]:
    """Draw ``n`` traces from the process, fit the whole model, compare with the truth.

    Returns the fitted and true p_w, p_s, the TV distance of the length pmf and of each class's
    P(o | c) to the empirical per-class distribution of the true classes, and the policy
    disagreement (:func:`policy_disagreement`), plus timings. ``p_strong`` is passed to
    :func:`fit_trim_model` (needed with ``explore=0``: p_s is then not identifiable).
    """
    proc = process or SyntheticTrimProcess()
    t0 = time.perf_counter()
    traces, classes = proc.sample(n, explore=explore, step_labels=step_labels,
                                  random_state=random_state)
    t1 = time.perf_counter()
    rep = fit_trim_model(traces, n_init=n_init, emission=emission, random_state=0,
                         p_strong=p_strong)
    t2 = time.perf_counter()
    fitted, truth = rep.model, true_model(proc, traces, classes, rep.model.bin_size)
    emp = empirical_class_probs(traces, classes, rep.model.bin_size)
    allc = np.concatenate(classes)
    out = {
        "n_traces": n, "n_steps": int(allc.size), "explore": explore, "step_labels": step_labels,
        "emission": rep.summary["fitted"]["observation_model"]["emission"],
        "emission_requested": emission,
        "p_weak": fitted.p_weak, "p_weak_true": proc.p_weak,
        "p_weak_se": rep.summary["fitted"]["p_weak"]["se"],
        "p_weak_empirical": float((allc == S0).sum() / ((allc == S0).sum() + (allc == S2).sum())),
        "p_strong": fitted.p_strong, "p_strong_true": proc.p_strong,
        "p_strong_se": rep.summary["fitted"]["p_strong"]["se"],
        "length_tv": total_variation(length_pmf(fitted.hazard.tolist()), proc.censored_length_pmf()),
        "obs_tv": [total_variation(fitted.obs_probs[c], emp[c]) for c in range(3)],
        "future_tokens": fitted.future_tokens, "max_steps": fitted.max_steps,
        "policy": policy_disagreement(fitted, truth, lams=lams),
        "seconds": {"sample": t1 - t0, "fit": t2 - t1, "policies": time.perf_counter() - t2},
    }
    return out


__all__ = ["SyntheticTrimProcess", "empirical_class_probs", "policy_disagreement",
           "recovery_check", "simplex_grid", "total_variation", "true_model"]
