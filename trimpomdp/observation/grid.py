"""The observation grid and the binned class densities, scalar and batched, in one place.

The TRIM observation o = (min of previous scores, current score) lies in the unit square. The
release bins it on a square grid (``bin_size`` 0.05: 20 × 20 bins, row-major over (min bin,
current bin)); P(bin | class) is the solver's form. At runtime the density is either the binned
lookup (constant per bin) or its bilinear interpolation between bin centres ("continuous", a fast
stand-in for the release's KDE). The scalar forms (plain Python, a few µs) serve the router; the
batched forms (numpy) serve replay and simulation, with the same numbers operation for operation.

A model may carry a monotone score transform g (:class:`~trimpomdp.observation.transform.
ScoreTransform`): its grid is then on g(score), and every density here maps both coordinates
through g first. The transform travels with the model's table (:class:`ObsTable`, what
``TrimModel.obs_probs`` is when a transform is set), so any caller that passes
``model.obs_probs`` gets the transformed density; without a transform nothing changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.observation.transform import ScoreTransform

Triple = tuple[float, float, float]
DENSITIES = ("binned", "continuous")


def grid_size(bin_size: float) -> int:
    """Bins per axis for ``bin_size``; InputError unless 1/bin_size is an integer."""
    try:
        bs = float(bin_size)
    except (TypeError, ValueError):
        bs = float("nan")
    k = round(1.0 / bs) if bs > 0 else 0
    if not (0 < bs <= 1) or abs(k * bs - 1.0) > 1e-9:
        raise InputError(f"The 'bin_size' parameter must divide 1 into equal bins (e.g. 0.05). "
                         f"Got {bin_size!r} instead.", field="bin_size")
    return k


def bin_index(X: np.ndarray, bin_size: float) -> np.ndarray:
    """Flat bin index of each observation (n, 2): row-major over (min_prev bin, current bin)."""
    k = grid_size(bin_size)
    ij = np.clip(np.floor(np.asarray(X, float) / bin_size + 1e-12).astype(int), 0, k - 1)
    return ij[:, 0] * k + ij[:, 1]


def bin_centres(bin_size: float) -> np.ndarray:
    """Centres of the bins in flat order, shape (n_bins, 2)."""
    k = grid_size(bin_size)
    c = (np.arange(k) + 0.5) * bin_size
    return np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)


class ObsTable(np.ndarray):
    """P(bin | class) (3, n_bins) that carries the model's score transform.

    Only the table a model holds has ``score_transform`` set; arrays derived from it (slices,
    arithmetic) read the class default None. Copies and pickles keep the transform.
    """

    score_transform: ScoreTransform | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (obs_table, (np.asarray(self), self.score_transform))

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return self.__reduce__()

    def __copy__(self) -> ObsTable:
        return _tagged(np.array(self), self.score_transform)

    def __deepcopy__(self, memo: Any) -> ObsTable:
        return _tagged(np.array(self), self.score_transform)


def _tagged(probs: Any, transform: ScoreTransform | None) -> ObsTable:
    t = np.array(probs, dtype=float).view(ObsTable)
    t.score_transform = transform
    return t


def obs_table(probs: Any, transform: ScoreTransform | None) -> np.ndarray:
    """``probs`` tagged with ``transform`` (an :class:`ObsTable`); None: ``probs``
    itself, a plain array, exactly as without transforms."""
    if transform is None:
        return np.asarray(probs, dtype=float)
    return _tagged(probs, transform)


def transform_of(probs: Any) -> ScoreTransform | None:
    """The score transform a table carries (None for plain arrays)."""
    return getattr(probs, "score_transform", None)


def _table(probs: Any, bin_size: float) -> tuple[int, np.ndarray]:
    k = grid_size(bin_size)
    p = np.asarray(probs, dtype=float)
    if p.shape != (3, k * k):
        raise InputError(f"probs must have shape (3, {k * k}). Got {p.shape} instead.",
                         field="probs")
    return k, p


class BinnedDensity:
    """P(bin | class) lookup on the grid (the release's solver form); constant per bin.

    With a score transform (``transform``, or the one ``probs`` carries) the instance is a
    :class:`TransformedBinnedDensity`: both coordinates go through g first.
    """

    transform: ScoreTransform | None = None

    def __new__(cls, probs: Any, bin_size: float = 0.05,  # noqa: PYI034 - may return a subclass
                transform: ScoreTransform | None = None) -> BinnedDensity:
        g = transform if transform is not None else transform_of(probs)
        kind = _TRANSFORMED.get(cls, cls) if g is not None else cls
        return object.__new__(kind)  # type: ignore[no-any-return]

    def __init__(self, probs: Any, bin_size: float = 0.05,
                 transform: ScoreTransform | None = None) -> None:
        g = transform if transform is not None else transform_of(probs)
        self.k, p = _table(probs, bin_size)
        self.probs = p
        self.bin_size = float(bin_size)
        if g is not None:
            self.transform = g
        self._table = [tuple(float(x) for x in col) for col in p.T]

    def _idx(self, x: float) -> int:
        i = int(x / self.bin_size + 1e-12)
        return self.k - 1 if i >= self.k else i

    def __call__(self, min_prev: float, current: float) -> Triple:
        return self._table[self._idx(min_prev) * self.k + self._idx(current)]  # type: ignore[return-value]


class InterpolatedDensity(BinnedDensity):
    """Continuous density: bilinear interpolation of the binned density between bin centres."""

    def _axis(self, x: float) -> tuple[int, int, float]:
        u = x / self.bin_size - 0.5
        if u <= 0.0:
            return 0, 0, 0.0
        if u >= self.k - 1:
            return self.k - 1, self.k - 1, 0.0
        i = int(u)
        return i, i + 1, u - i

    def __call__(self, min_prev: float, current: float) -> Triple:
        i0, i1, fx = self._axis(min_prev)
        j0, j1, fy = self._axis(current)
        k, t = self.k, self._table
        a, b, c, d = t[i0 * k + j0], t[i0 * k + j1], t[i1 * k + j0], t[i1 * k + j1]
        w00, w01, w10, w11 = (1 - fx) * (1 - fy), (1 - fx) * fy, fx * (1 - fy), fx * fy
        return (w00 * a[0] + w01 * b[0] + w10 * c[0] + w11 * d[0],
                w00 * a[1] + w01 * b[1] + w10 * c[1] + w11 * d[1],
                w00 * a[2] + w01 * b[2] + w10 * c[2] + w11 * d[2])


class _Transformed:
    """Mixin: map (min_prev, current) through the score transform, then the grid density."""

    transform: ScoreTransform | None

    def __call__(self, min_prev: float, current: float) -> Triple:
        g: Any = self.transform
        return super().__call__(g(min_prev), g(current))  # type: ignore[misc, no-any-return]


class TransformedBinnedDensity(_Transformed, BinnedDensity):
    """:class:`BinnedDensity` of g(min_prev), g(current)."""


class TransformedInterpolatedDensity(_Transformed, InterpolatedDensity):
    """:class:`InterpolatedDensity` of g(min_prev), g(current)."""


_TRANSFORMED: dict[type, type] = {BinnedDensity: TransformedBinnedDensity,
                                  InterpolatedDensity: TransformedInterpolatedDensity}


def density_batch(probs: Any, bin_size: float, min_prev: Any, current: Any,
                  density: str = "continuous", transform: ScoreTransform | None = None
                  ) -> np.ndarray:
    """Likelihoods (m, 3) of many observations under each class, vectorised.

    Same numbers as :class:`InterpolatedDensity` (``"continuous"``) or :class:`BinnedDensity`
    (``"binned"``), operation for operation; ``transform`` (default: the one ``probs`` carries)
    maps the raw scores onto the grid first.
    """
    g = transform if transform is not None else transform_of(probs)
    k, p = _table(probs, bin_size)
    bs = float(bin_size)
    tab = p.T  # (k*k, 3)
    x, y = np.asarray(min_prev, float), np.asarray(current, float)
    if g is not None:
        x, y = g.batch(x), g.batch(y)
    if density == "binned":
        def idx(v: np.ndarray) -> np.ndarray:
            return np.minimum((v / bs + 1e-12).astype(np.int64), k - 1)

        return tab[idx(x) * k + idx(y)]
    if density not in ("continuous", "interpolated"):
        raise InputError(f"The 'density' parameter must be 'continuous' or 'binned'. Got "
                         f"{density!r} instead.", field="density")

    def axis(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = v / bs - 0.5
        lo, hi = u <= 0.0, u >= k - 1
        i = np.clip(u, 0, k - 1).astype(np.int64)
        i0 = np.where(lo, 0, np.where(hi, k - 1, i))
        i1 = np.where(lo, 0, np.where(hi, k - 1, i + 1))
        f = np.where(lo | hi, 0.0, u - i)
        return i0, i1, f

    i0, i1, fx = axis(x)
    j0, j1, fy = axis(y)
    a, b, c, d = tab[i0 * k + j0], tab[i0 * k + j1], tab[i1 * k + j0], tab[i1 * k + j1]
    w00, w01 = ((1 - fx) * (1 - fy))[:, None], ((1 - fx) * fy)[:, None]
    w10, w11 = (fx * (1 - fy))[:, None], (fx * fy)[:, None]
    return w00 * a + w01 * b + w10 * c + w11 * d


__all__ = ["DENSITIES", "BinnedDensity", "InterpolatedDensity", "ObsTable", "ScoreTransform",
           "TransformedBinnedDensity", "TransformedInterpolatedDensity", "bin_centres",
           "bin_index", "density_batch", "grid_size", "obs_table", "transform_of"]
