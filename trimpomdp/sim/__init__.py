"""Simulators of step-routed generation: score pools, scenarios, the calibrated and naive
simulators, and the rollout engine. Names load lazily (the calibrated simulator needs sklearn).

Assumptions of the calibrated simulator: :mod:`trimpomdp.sim.calibrated`. Budget → λ searches
built on these simulators: :mod:`trimpomdp.tuning`.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ScorePools": "trimpomdp.sim.pools", "POOLS_FILE": "trimpomdp.sim.pools",
    "Scenario": "trimpomdp.sim.scenario", "RunResult": "trimpomdp.sim.scenario",
    "CalibratedSimulator": "trimpomdp.sim.calibrated", "load_simulator": "trimpomdp.sim.calibrated",
    "CALIBRATION_FILE": "trimpomdp.sim.calibrated", "RELEASE_ENDPOINTS": "trimpomdp.sim.calibrated",
    "NaiveSimulator": "trimpomdp.sim.naive",
    "rollout": "trimpomdp.sim.engine", "simulate": "trimpomdp.sim.engine",
    "threshold_act": "trimpomdp.sim.engine", "ActFn": "trimpomdp.sim.engine",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.sim' has no attribute {name!r}")
