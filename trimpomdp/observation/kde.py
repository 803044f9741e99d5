"""2-D Gaussian KDE per class, reflected at the borders of the unit square (the release's method).

The kernel is axis-aligned (diagonal bandwidth), which makes the reflection exact and lets
:meth:`bin_probs` integrate the density over bins in closed form (normal CDF differences).
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from scipy.special import ndtr

from trimpomdp._io import envelope, write_json
from trimpomdp._validate import nonneg_float
from trimpomdp.errors import DataWarning, InputError
from trimpomdp.observation.base import N_CLASSES, BaseObservationModel, check_X, check_y, grid_size

_SQRT2PI = np.sqrt(2.0 * np.pi)


def _images(x: np.ndarray) -> np.ndarray:
    """The point and its mirror images across 0 and 1: shape (3, n)."""
    return np.stack([x, -x, 2.0 - x])


#: fewer observations of a class than this make its KDE mostly kernel (a warning)
KDE_MIN_SAMPLES = 10


def _check_class_size(n: int, c: int) -> None:
    """No observations of a class: InputError; very few: DataWarning (the kernel dominates)."""
    if n == 0:
        raise InputError(f"class S{c} has no observations; a KDE needs at least one per class "
                         "(use the binned method with alpha > 0 for missing classes).",
                         field="y")
    if n < KDE_MIN_SAMPLES:
        warnings.warn(f"class S{c} has only {n} observations: its KDE is mostly the kernel "
                      "(bandwidth), not the data.", DataWarning, stacklevel=3)


class ReflectedKDEObservationModel(BaseObservationModel, method="kde"):
    """Class-conditional reflected Gaussian KDE on [0, 1]^2.

    Parameters
    ----------
    bandwidth : float or "scott"
        Kernel standard deviation in score units, or "scott": n^(-1/6) times each axis' sample
        standard deviation (Scott's rule for d = 2, per class and axis).
    max_samples : int or None
        Subsample each class to at most this many points (keeps evaluation fast).
    random_state : int or None
        Seed for subsampling.
    """

    def __init__(self, bandwidth: float | str = "scott", max_samples: int | None = 20000,
                 random_state: int | None = 0) -> None:
        self.bandwidth = bandwidth
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> ReflectedKDEObservationModel:
        """Store each class's observations and its bandwidth ``bandwidth_`` (3, 2)."""
        X = check_X(X)
        y = check_y(y, X.shape[0])
        if not (self.bandwidth == "scott" or (not isinstance(self.bandwidth, str)
                                             and nonneg_float(self.bandwidth, "bandwidth",
                                                              strict=True))):
            raise InputError(f"The 'bandwidth' parameter of {type(self).__name__} must be a float "
                             f"in the range (0, inf) or 'scott'. Got {self.bandwidth!r} instead.")
        rng = np.random.default_rng(self.random_state)
        data, bw = [], np.zeros((N_CLASSES, 2))
        for c in range(N_CLASSES):
            Xc = X[y == c]
            _check_class_size(len(Xc), c)
            if self.max_samples is not None and len(Xc) > self.max_samples:
                Xc = Xc[rng.choice(len(Xc), self.max_samples, replace=False)]
            data.append(Xc)
            if self.bandwidth == "scott":
                sd = Xc.std(axis=0, ddof=1) if len(Xc) > 1 else np.full(2, 0.1)
                bw[c] = np.maximum(sd, 1e-3) * len(Xc) ** (-1.0 / 6.0)
            else:
                bw[c] = float(self.bandwidth)
        self.data_ = data
        self.bandwidth_ = bw
        self.classes_ = np.arange(N_CLASSES)
        return self

    def _log_density(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], N_CLASSES))
        for c in range(N_CLASSES):
            D, h = self.data_[c], self.bandwidth_[c]
            dens = np.zeros(X.shape[0])
            for start in range(0, X.shape[0], 256):
                q = X[start:start + 256]
                k = np.ones((q.shape[0], D.shape[0]))
                for ax in range(2):
                    z = (q[:, ax][None, :, None] - _images(D[:, ax])[:, None, :]) / h[ax]
                    k *= np.exp(-0.5 * z * z).sum(axis=0) / (h[ax] * _SQRT2PI)
                dens[start:start + 256] = k.mean(axis=1)
            with np.errstate(divide="ignore"):
                out[:, c] = np.log(dens)
        return out

    def bin_probs(self, bin_size: float = 0.05) -> np.ndarray:
        """Exact integral of each class density over each bin (row-major), renormalised."""
        self._check_fitted()
        k = grid_size(bin_size)
        edges = np.linspace(0.0, 1.0, k + 1)
        P = np.empty((N_CLASSES, k * k))
        for c in range(N_CLASSES):
            D, h = self.data_[c], self.bandwidth_[c]
            mass = []
            for ax in range(2):
                img = _images(D[:, ax])[:, :, None]
                cdf = ndtr((edges[None, None, :] - img) / h[ax])
                mass.append(np.diff(cdf, axis=2).sum(axis=0))  # (n, k)
            M = mass[0].T @ mass[1] / D.shape[0]
            P[c] = (M / M.sum()).ravel()
        return P

    def sample(self, n: int, c: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` observations of class ``c`` (kernel draw, reflected into the square)."""
        self._check_fitted()
        rng = np.random.default_rng(random_state)
        D = self.data_[c]
        x = D[rng.integers(0, len(D), n)] + rng.standard_normal((n, 2)) * self.bandwidth_[c]
        for _ in range(4):
            x = np.where(x < 0, -x, x)
            x = np.where(x > 1, 2.0 - x, x)
        return np.clip(x, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return envelope("observation_model", {
            "method": "kde", "bandwidth": self.bandwidth, "max_samples": self.max_samples,
            "bandwidth_": self.bandwidth_.tolist(), "data": [d.tolist() for d in self.data_]})

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def _from_dict(cls, doc: dict[str, Any], path: Any = "<model>"
                   ) -> ReflectedKDEObservationModel:
        m = cls(bandwidth=doc["bandwidth"], max_samples=doc["max_samples"])
        m.data_ = [check_X(d, "data") for d in doc["data"]]
        m.bandwidth_ = np.asarray(doc["bandwidth_"], float)
        m.classes_ = np.arange(N_CLASSES)
        return m
