"""Common base of the class-conditional observation models P(o | c).

Observations are TRIM's o = (min previous score, current score) in the unit square; classes are
S0, S1, S2. Models are scikit-learn estimators: ``fit(X, y)`` validates and sets attributes that
end in ``_``; ``score(X, y)`` is the mean conditional log-likelihood so model selection tools work.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from trimpomdp._estimator import BaseEstimator
from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.observation.grid import grid_size  # noqa: F401  (re-exported: its home is grid)

N_CLASSES = 3


def check_X(X: Any, name: str = "X") -> np.ndarray:
    """Observations as a float array of shape (n, 2) inside the unit square, else InputError."""
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an array of shape (n, 2). Got {type(X).__name__} "
                         "instead.") from None
    if arr.ndim == 1 and arr.size == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{name} must be an array of shape (n, 2). Got shape {arr.shape} "
                         "instead.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must hold finite numbers. Got NaN or inf instead.")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise InputError(f"{name} must lie in [0, 1]^2. Got values in [{arr.min():g}, "
                         f"{arr.max():g}] instead.")
    return arr


def check_y(y: Any, n: int) -> np.ndarray:
    """Class labels 0/1/2 of length ``n``, else InputError."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise InputError(f"y must have shape ({n},). Got {arr.shape} instead.")
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0
                     or arr.max() >= N_CLASSES):
        raise InputError(f"y must hold class indices 0 (S0), 1 (S1), 2 (S2). Got "
                         f"{np.unique(arr)[:5].tolist()} instead.")
    for c in range(N_CLASSES):
        if not np.any(arr == c):
            raise InputError(f"y must contain every class S0, S1, S2. Class S{c} has no "
                             "example.")
    return arr.astype(int)


#: saved ``method`` name -> estimator class (filled by subclasses; read by observation.io)
REGISTRY: dict[str, type[BaseObservationModel]] = {}


class BaseObservationModel(BaseEstimator):
    """Class-conditional density of the observation; subclasses implement fit/_log_density."""

    def __init_subclass__(cls, method: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if method is not None:
            REGISTRY[method] = cls

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before using this estimator.")

    def _log_density(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def logpdf(self, X: Any) -> np.ndarray:
        """Log density log p(o | c) per observation and class, shape (n, 3)."""
        self._check_fitted()
        return self._log_density(check_X(X))

    def pdf(self, X: Any) -> np.ndarray:
        """Density p(o | c) per observation and class, shape (n, 3)."""
        return np.exp(self.logpdf(X))

    def predict_proba(self, X: Any, prior: Any = None) -> np.ndarray:
        """Posterior P(c | o) under ``prior`` (uniform by default), shape (n, 3)."""
        lp = self.logpdf(X)
        pri = np.full(N_CLASSES, 1.0 / N_CLASSES) if prior is None else np.asarray(prior, float)
        with np.errstate(divide="ignore"):
            lp = lp + np.log(pri)
        m = lp.max(axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        p = np.exp(lp - m)
        s = p.sum(axis=1, keepdims=True)
        return np.divide(p, s, out=np.full_like(p, 1.0 / N_CLASSES), where=s > 0)

    def score_samples(self, X: Any, y: Any) -> np.ndarray:
        """log p(x_i | y_i) for each labelled observation."""
        X = check_X(X)
        y = check_y(y, X.shape[0]) if len(np.unique(y)) == N_CLASSES else np.asarray(y, int)
        return self.logpdf(X)[np.arange(X.shape[0]), y]

    def score(self, X: Any, y: Any) -> float:
        """Mean conditional log-likelihood of labelled observations (higher is better)."""
        return float(np.mean(self.score_samples(X, y)))

    def bin_probs(self, bin_size: float = 0.05) -> np.ndarray:  # pragma: no cover - abstract
        """P(bin | class) on a square grid, shape (3, n_bins); rows sum to 1."""
        raise NotImplementedError

    def to_bins(self, bin_size: float = 0.05) -> BaseObservationModel:
        """This model integrated over a ``bin_size`` grid, as a binned model."""
        return REGISTRY["binned"].from_probs(  # type: ignore[attr-defined, no-any-return]
            self.bin_probs(bin_size), bin_size)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to JSON (atomically); load with :func:`trimpomdp.observation.load_observation_model`."""
        raise NotImplementedError  # pragma: no cover

