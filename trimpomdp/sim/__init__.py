"""Simulators of step-routed generation: score pools, scenarios, the calibrated and naive
simulators, and the rollout engine. Names load lazily (the calibrated simulator needs sklearn).

Assumptions of the calibrated simulator: :mod:`trimpomdp.sim.calibrated`. Budget → λ searches
built on these simulators: :mod:`trimpomdp.tuning`.
"""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr

_LAZY = {
    "ScorePools": "trimpomdp.sim.pools", "POOLS_FILE": "trimpomdp.sim.pools",
    "Scenario": "trimpomdp.sim.scenario", "RunResult": "trimpomdp.sim.scenario",
    "CalibratedSimulator": "trimpomdp.sim.calibrated", "load_simulator": "trimpomdp.sim.calibrated",
    "CALIBRATION_FILE": "trimpomdp.sim.calibrated", "RELEASE_ENDPOINTS": "trimpomdp.sim.calibrated",
    "CALIBRATION_FILE_V1": "trimpomdp.sim.calibrated",
    "PAIRED_CALIBRATION_FILE": "trimpomdp.sim.calibrated",
    "PAIRED_TOL_CALIBRATION_FILE": "trimpomdp.sim.calibrated",
    "PAIRED_POOLS_FILE": "trimpomdp.sim.pools",
    "fit_thr": "trimpomdp.sim.fitting", "thr_loss": "trimpomdp.sim.fitting",
    "NaiveSimulator": "trimpomdp.sim.naive",
    "release_factory": "trimpomdp.sim.release_rule",
    "OBSERVE_STRONG_SCORES": "trimpomdp.sim.release_rule",
    "rollout": "trimpomdp.sim.engine", "simulate": "trimpomdp.sim.engine",
    "threshold_act": "trimpomdp.sim.engine", "step_oracle": "trimpomdp.sim.engine", "ActFn": "trimpomdp.sim.engine",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


__getattr__ = lazy_getattr(__name__, _LAZY)
