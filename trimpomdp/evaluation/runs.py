"""Metrics from live run logs (``trimpomdp run`` folders): one curve point per run folder.

Failed problems count as wrong answers (they are reported separately). Weak-only and strong-only
runs among the folders (policy ``weak`` / ``strong``) give the reference points for PGR, CPT
and ΔIBC; without them only the per-run summary is available.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trimpomdp._io import read_json
from trimpomdp.errors import InputError, located
from trimpomdp.evaluation.curves import family, sort_points, spec_param
from trimpomdp.evaluation.metrics import CurvePoint, References, metrics_row
from trimpomdp.generation.runlog import read_runlog, summarize


def run_point(run_dir: str | os.PathLike[str]) -> tuple[str, CurvePoint, dict[str, Any]]:
    """(policy spec, curve point, summary) of one run folder."""
    d = Path(run_dir)
    if not d.exists():
        raise InputError("run log not found (expected a run folder or a runlog.jsonl)", path=d)
    if not d.is_dir():
        raise InputError("expected a run folder of `trimpomdp run` (with runlog.jsonl). Got a "
                         "file instead.", path=d)
    cfg_path = d / "run.json"
    spec = d.name
    if cfg_path.exists():
        cfg = read_json(cfg_path)
        if not isinstance(cfg, dict):
            raise InputError(f"run settings must be a JSON object. Got {type(cfg).__name__} "
                             "instead.", path=cfg_path)
        policy = cfg.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise InputError(f"policy must be a policy spec string. Got {policy!r} instead.",
                             path=cfg_path, field="policy")
        spec = policy or d.name
    recs = read_runlog(d)
    if not recs:
        raise InputError("run log has no finished problem", path=d / "runlog.jsonl")
    acc = sum(bool(r.get("correct")) for r in recs) / len(recs)
    tok = sum(float(r.get("strong_tokens") or 0.0) for r in recs) / len(recs)
    point = CurvePoint(policy=spec, accuracy=acc, strong_tokens=tok, param=spec_param(spec),
                       n=len(recs))
    return spec, point, {"run": str(d), "policy": spec, **summarize(recs)}


def evaluate_runs(run_dirs: Sequence[str | os.PathLike[str]]
                  ) -> tuple[dict[str, list[CurvePoint]], References | None, list[dict], list[dict]]:
    """Curves per policy family, references (if weak and strong runs exist), metric rows and
    per-run summaries."""
    curves: dict[str, list[CurvePoint]] = {}
    summaries: list[dict] = []
    refs: dict[str, CurvePoint] = {}
    ref_dirs: dict[str, str | os.PathLike[str]] = {}
    seen: dict[str, str] = {}
    for d in run_dirs:
        key = os.path.realpath(d)
        if key in seen:
            raise InputError(f"this run folder is given twice (also as {seen[key]!r})", path=d)
        seen[key] = os.fspath(d)
        spec, point, summ = run_point(d)
        summaries.append(summ)
        if spec in ("weak", "strong") and spec in refs:
            raise InputError(f"two '{spec}'-only runs given; keep one (reference points must be "
                             "unique)", path=d)
        if spec in ("weak", "strong"):
            refs[spec] = point
            ref_dirs[spec] = d
        else:
            curves.setdefault(family(spec), []).append(point)
    ref = None
    if "weak" in refs and "strong" in refs:
        with located(ref_dirs["strong"]):  # e.g. a strong run that spent no strong tokens
            ref = References(weak_accuracy=refs["weak"].accuracy,
                             strong_accuracy=refs["strong"].accuracy,
                             strong_tokens=refs["strong"].strong_tokens,
                             weak_tokens=refs["weak"].strong_tokens)
    rows = [] if ref is None else [metrics_row(k, sort_points(v), ref) for k, v in curves.items()]
    return curves, ref, rows, summaries
