"""Binned (histogram) observation model: P(bin | class) on a square grid over the unit square.

The release's solver works with exactly this form (0.05 bins, 400 observations).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from trimpomdp._io import envelope, read_json, write_json
from trimpomdp._validate import nonneg_float, stochastic_rows, warn_if_smoothing_dominates
from trimpomdp.errors import InputError
from trimpomdp.observation.base import N_CLASSES, BaseObservationModel, check_X, check_y
from trimpomdp.observation.grid import bin_centres, bin_index, grid_size

RELEASE_STATE_KEYS = ("S0_correct", "S1_unrecoverable", "S2_recoverable")


class _BinnedDensity:
    """Shared by estimators whose fitted form is P(bin | class): sets ``probs_`` and evaluates."""

    bin_size: float

    def _set(self, probs: np.ndarray) -> None:
        self.probs_ = probs
        self.classes_ = np.arange(N_CLASSES)
        self.n_bins_ = probs.shape[1]
        with np.errstate(divide="ignore"):
            self._log_dens = np.log(probs) - 2.0 * np.log(self.bin_size)

    def _log_density(self, X: np.ndarray) -> np.ndarray:
        return self._log_dens[:, bin_index(X, self.bin_size)].T


class BinnedObservationModel(_BinnedDensity, BaseObservationModel, method="binned"):
    """Histogram of observations per class with additive (Laplace) smoothing.

    Parameters
    ----------
    bin_size : float
        Width of the square bins; 1 / bin_size must be an integer.
    alpha : float
        Pseudo-count added to every bin before normalising (0 = no smoothing).
    """

    def __init__(self, bin_size: float = 0.05, alpha: float = 1.0) -> None:
        self.bin_size = bin_size
        self.alpha = alpha

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BinnedObservationModel:
        """Count observations per (class, bin), add ``alpha`` and normalise."""
        X = check_X(X)
        y = check_y(y, X.shape[0])
        k = grid_size(self.bin_size)
        alpha = nonneg_float(self.alpha, "alpha")
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        idx = bin_index(X, self.bin_size)
        counts = np.zeros((N_CLASSES, k * k))
        np.add.at(counts, (y, idx), w)
        warn_if_smoothing_dominates(counts.sum(axis=1), alpha, k * k)
        counts += alpha
        if np.any(counts.sum(axis=1) <= 0):
            raise InputError("every class needs at least one observation or alpha > 0")
        self._set(counts / counts.sum(axis=1, keepdims=True))
        self.n_samples_ = np.bincount(y, minlength=N_CLASSES)
        return self

    @classmethod
    def from_probs(cls, probs: Any, bin_size: float = 0.05, *,
                   path: str | os.PathLike[str] | None = None) -> BinnedObservationModel:
        """A fitted model from P(bin | class), shape (3, n_bins); rows must sum to 1 (1e-6)."""
        k = grid_size(bin_size)
        p = np.asarray(probs, dtype=float)
        if p.shape != (N_CLASSES, k * k):
            raise InputError(f"probs must have shape (3, {k * k}) for bin_size {bin_size}. Got "
                             f"{p.shape} instead.", path=path, field="probs")
        p = stochastic_rows(p, "probs", path=path)
        m = cls(bin_size=bin_size, alpha=0.0)
        m._set(p / p.sum(axis=1, keepdims=True))
        return m

    @classmethod
    def from_release_json(cls, path: str | os.PathLike[str]) -> BinnedObservationModel:
        """Load the release's ``obs_model_*_bin0.05.json`` (states S0/S1/S2, 400 bins)."""
        doc = read_json(path)
        try:
            bs = float(doc["bin_size"])
            states = doc["states"]
            probs = [states[k] for k in RELEASE_STATE_KEYS]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a release observation file: missing {exc}", path=path) from None
        centres = np.asarray(doc.get("bin_centres", bin_centres(bs)), float)
        if centres.shape != bin_centres(bs).shape or not np.allclose(centres, bin_centres(bs)):
            raise InputError("bin_centres must be in row-major (min_prev, current) order",
                             path=path, field="bin_centres")
        return cls.from_probs(probs, bs, path=path)

    def obs_index(self, X: Any) -> np.ndarray:
        """Flat bin index of each observation (for solvers working on bins)."""
        return bin_index(check_X(X), self.bin_size)

    def bin_probs(self, bin_size: float = 0.05) -> np.ndarray:
        """P(bin | class) for this grid or a coarser one whose bins are unions of ours."""
        self._check_fitted()
        k, k2 = grid_size(self.bin_size), grid_size(bin_size)
        if k2 == k:
            return self.probs_.copy()
        if k % k2:
            raise InputError(f"bin_size {bin_size} must be a multiple of this model's "
                             f"{self.bin_size}.", field="bin_size")
        r = k // k2
        return self.probs_.reshape(N_CLASSES, k2, r, k2, r).sum(axis=(2, 4)).reshape(N_CLASSES, -1)

    def sample(self, n: int, c: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` observations of class ``c`` (uniform within the drawn bin)."""
        self._check_fitted()
        rng = np.random.default_rng(random_state)
        k = grid_size(self.bin_size)
        idx = rng.choice(self.n_bins_, size=n, p=self.probs_[c])
        ij = np.column_stack([idx // k, idx % k]).astype(float)
        return np.clip((ij + rng.random((n, 2))) * self.bin_size, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (versioned envelope)."""
        self._check_fitted()
        return envelope("observation_model", {"method": "binned", "bin_size": self.bin_size,
                                              "alpha": self.alpha,
                                              "probs": self.probs_.tolist()})

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def _from_dict(cls, doc: dict[str, Any], path: Any = "<model>") -> BinnedObservationModel:
        return cls.from_probs(doc["probs"], doc["bin_size"], path=path)


__all__ = ["RELEASE_STATE_KEYS", "BinnedObservationModel", "bin_centres", "bin_index"]
