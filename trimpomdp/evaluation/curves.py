"""Cost–accuracy curves from simulator runs or run-log records."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.evaluation.metrics import CurvePoint, References, metrics_row
from trimpomdp.routing.spec import make_router
from trimpomdp.sim import load_simulator, simulate


def point_from_run(result: Any, param: float | None = None, name: str | None = None
                   ) -> CurvePoint:
    """A curve point from a :class:`trimpomdp.sim.RunResult`."""
    return CurvePoint(policy=name or result.policy, accuracy=result.accuracy,
                      strong_tokens=result.mean_strong_tokens, param=param,
                      n=int(result.correct.size))


def points_from_records(records: Iterable[Mapping[str, Any]], *, key: str = "policy"
                        ) -> dict[str, list[CurvePoint]]:
    """Group per-problem records ``{key, correct, strong_tokens[, param]}`` into curve points."""
    groups: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for i, r in enumerate(records):
        try:
            groups.setdefault((str(r[key]), r.get("param")), []).append(r)
        except (KeyError, TypeError):
            raise InputError(f"record {i} needs a '{key}' field.", field=key) from None
    out: dict[str, list[CurvePoint]] = {}
    for (name, param), rs in groups.items():
        try:
            acc = float(np.mean([bool(r["correct"]) for r in rs]))
            tok = float(np.mean([float(r["strong_tokens"]) for r in rs]))
        except KeyError as exc:
            raise InputError("every record needs 'correct' and 'strong_tokens'.",
                             field=str(exc.args[0])) from None
        out.setdefault(name, []).append(CurvePoint(policy=name, accuracy=acc, strong_tokens=tok,
                                                   param=param, n=len(rs)))
    for v in out.values():
        v.sort(key=lambda p: p.strong_tokens)
    return out


def references_from_runs(weak: Any, strong: Any, oracle: Any = None) -> References:
    """References from weak-only, strong-only (and oracle) runs on the same problems."""
    return References(weak_accuracy=weak.accuracy, strong_accuracy=strong.accuracy,
                      strong_tokens=strong.mean_strong_tokens, weak_tokens=weak.mean_strong_tokens,
                      oracle_accuracy=None if oracle is None else oracle.accuracy,
                      oracle_tokens=None if oracle is None else oracle.mean_strong_tokens)


def sort_points(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """Points in increasing cost."""
    return sorted(points, key=lambda p: p.strong_tokens)


def family(spec: str) -> str:
    """Curve a policy spec belongs to: its kind (``thr``, ``pomdp``, …; agg/seq per kind)."""
    return spec.partition(":")[0]


def spec_param(spec: str) -> float | None:
    """The numeric argument of a spec (k, λ, p), if any."""
    try:
        return float(spec.partition(":")[2])
    except ValueError:
        return None


def evaluate_specs(specs: Sequence[str], *, n: int = 2000, seed: int = 0, model: Any = None,
                   simulator: Any = None, progress: bool = False
                   ) -> tuple[dict[str, list[CurvePoint]], References, list[dict[str, Any]]]:
    """Simulate every policy spec on the same problems; curves per family, references, rows.

    Weak-only, strong-only and the oracle are always run for the reference lines.
    """

    if not specs:
        raise InputError("give at least one policy spec.", field="policies")
    sim = simulator if simulator is not None else load_simulator()
    sc = sim.scenario(n, seed)
    runs = {s: simulate(make_router(s, model, record=False), sc) for s in
            ("weak", "strong", "oracle")}
    ref = references_from_runs(runs["weak"], runs["strong"], runs["oracle"])
    curves: dict[str, list[CurvePoint]] = {}
    for s in specs:
        res = simulate(make_router(s, model, record=False), sc, progress=progress)
        param = spec_param(s)
        if param is None and hasattr(res, "policy") and "λ=" in res.policy:
            param = float(res.policy.split("λ=")[1])
        curves.setdefault(family(s), []).append(point_from_run(res, param, family(s)))
    rows = [metrics_row(name, sort_points(pts), ref) for name, pts in curves.items()]
    return curves, ref, rows
