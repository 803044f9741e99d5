"""How well a per-solution score separates correct from wrong solutions: AUROC with bootstrap."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.evaluation.score_table import ScoreTable
from trimpomdp.evaluation.tracking import BeliefTracks


def auroc(correct: Any, score: Any) -> float:
    """Area under the ROC curve of ``score`` (higher = more likely correct) for ``correct``."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(correct, bool)
    s = np.asarray(score, float)
    if y.shape != s.shape or y.ndim != 1:
        raise InputError(f"correct and score must be 1-D of the same length. Got {y.shape} and "
                         f"{s.shape} instead.", field="score")
    if y.all() or not y.any():
        raise InputError("AUROC needs both correct and incorrect solutions. Got only one class.",
                         field="correct")
    if not np.all(np.isfinite(s)):
        raise InputError("score must be finite for every solution.", field="score")
    return float(roc_auc_score(y, s))


def separation_scores(data: ScoreTable, tracks: Mapping[str, BeliefTracks]
                      ) -> dict[str, np.ndarray]:
    """Per-solution scores to rank correct above incorrect: final P(S0) of each tracking, the
    minimum step score and the last step score."""
    out = {name: tr.p_s0_final() for name, tr in tracks.items()}
    out["min step score"] = data.min_score()
    out["last step score"] = data.last_score()
    return out


def auroc_table(data: ScoreTable, scores: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows {name, auroc, n, n_correct} for each score, best first."""
    rows = [{"score": k, "auroc": auroc(data.correct, v), "n": data.n,
             "n_correct": int(data.correct.sum())} for k, v in scores.items()]
    return sorted(rows, key=lambda r: -r["auroc"])


def auroc_bootstrap(correct: Any, scores: Mapping[str, Any], *, reference: str | None = None,
                    groups: Any = None, n_boot: int = 200, seed: int = 0, level: float = 0.95
                    ) -> list[dict[str, Any]]:
    """AUROC of each score with a percentile bootstrap interval, and the paired difference to
    ``reference``; the same resamples serve every score.

    Resamples solutions with replacement, or whole ``groups`` (e.g. problem ids: solutions of one
    problem are correlated) when given.
    """
    y = np.asarray(correct, bool)
    if groups is not None:
        _, g = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(g, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(g))[:-1])
    else:
        members = None
    if reference is not None and reference not in scores:
        raise InputError(f"reference must be one of the scores {sorted(scores)}. Got "
                         f"{reference!r} instead.", field="reference")
    S = {k: np.asarray(v, float) for k, v in scores.items()}
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in S}
    for _ in range(int(n_boot)):
        if members is None:
            i = rng.integers(0, y.size, y.size)
        else:
            i = np.concatenate([members[j] for j in rng.integers(0, len(members),
                                                                  len(members))])
        if y[i].all() or not y[i].any():
            continue
        for k, v in S.items():
            boots[k].append(auroc(y[i], v[i]))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = []
    for k, v in S.items():
        b = np.asarray(boots[k])
        row = {"score": k, "auroc": auroc(y, v), "lo": float(np.percentile(b, lo)),
               "hi": float(np.percentile(b, hi))}
        if reference is not None:
            d = np.asarray(b, float) - np.asarray(boots[reference], float)
            row.update({"diff": float(row["auroc"]) - auroc(y, S[reference]),  # type: ignore[arg-type]
                        "diff_lo": float(np.percentile(d, lo)),
                        "diff_hi": float(np.percentile(d, hi))})
        rows.append(row)
    return sorted(rows, key=lambda r: -r["auroc"])


__all__ = ["auroc", "auroc_bootstrap", "auroc_table", "separation_scores"]
