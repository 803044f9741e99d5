"""Turn step-labelled traces into labelled TRIM observations (classes S0, S1, S2).

``release_prefixes`` is the release's rule: each correct solution is cut at a few evenly spaced
points (S0 examples); an incorrect one gives the prefix ending at its first error (S2) and one
random later prefix (S1). ``every_prefix`` labels every step instead.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from trimpomdp.data.schema import Correctness, LabelledObservations, StepTrace
from trimpomdp.errors import InputError
from trimpomdp.observation.features import observation_sequence


def _error_index(tr: StepTrace) -> int | None:
    if not tr.has_step_labels:
        raise InputError(f"trace '{tr.problem_id}' has no step labels (first_error, labels or "
                         "correct=true) needed to assign classes", field="first_error")
    return tr.error_index


def release_prefixes(traces: Iterable[StepTrace], *, n_cuts: int = 3,
                     random_state: int | np.random.Generator | None = 0) -> LabelledObservations:
    """Labelled observations by the release's prefix rule.

    Correct solutions: ``n_cuts`` evenly spaced cut points (S0). Incorrect: the first-error
    step (S2) and one uniformly random later step, if any (S1).
    """
    if n_cuts < 1:
        raise InputError(f"n_cuts must be >= 1. Got {n_cuts} instead.", field="n_cuts")
    rng = np.random.default_rng(random_state)
    X, y = [], []
    for tr in traces:
        e = _error_index(tr)
        obs = observation_sequence(tr.scores)
        n = tr.n_steps
        if e is None:
            idx = np.unique(np.linspace(0, n - 1, num=min(n_cuts, n)).round().astype(int))
            X.extend(obs[idx])
            y.extend([Correctness.S0] * len(idx))
        else:
            X.append(obs[e])
            y.append(Correctness.S2)
            if e + 1 < n:
                j = int(rng.integers(e + 1, n))
                X.append(obs[j])
                y.append(Correctness.S1)
    if not X:
        raise InputError("no labelled observations could be made: the traces are empty")
    return LabelledObservations(np.asarray(X, dtype=float), np.asarray(y, dtype=int))


def every_prefix(traces: Iterable[StepTrace]) -> LabelledObservations:
    """Label every step: S0 before the first error, S2 at it, S1 after it."""
    X, y = [], []
    for tr in traces:
        e = _error_index(tr)
        obs = observation_sequence(tr.scores)
        lab = np.zeros(tr.n_steps, dtype=int)
        if e is not None:
            lab[e] = Correctness.S2
            lab[e + 1:] = Correctness.S1
        X.append(obs)
        y.append(lab)
    if not X:
        raise InputError("no labelled observations could be made: the traces are empty")
    return LabelledObservations(np.concatenate(X), np.concatenate(y))
