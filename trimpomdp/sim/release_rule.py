"""The TRIM release's runtime rule for TRIM-POMDP, reproduced step for step (issue 19).

What the release's ``TRIM_POMDP.py`` (commit 5ec6323) does per drafted step, and how this module
reproduces it (:func:`release_factory` + :data:`OBSERVE_STRONG_SCORES` for
:func:`trimpomdp.sim.engine.simulate`):

1. **Observation.** The PRM re-scores the whole history, in which a regenerated step is the
   *strong* step's text (``step_histories[q][-1] = tgt_text``; ``prm.reset`` is a no-op), so the
   observation (min of the previous scores, current score) takes the strong step's own PRM score
   into the min. The simulator must therefore pass each strong step's score to the router
   (``simulate(..., observe_regenerated=True)``); without it a regenerated step counts as 1.0
   and the min stays high after a wrong strong step, so later post-error drafts look like first
   errors and are regenerated in vain.
2. **Belief.** The posterior of that single observation under a uniform prior, with the
   release's *reflected Gaussian KDE* per class (``math-train_reflected_kde_obs_model.pkl``,
   bundled as ``data/sim/trim_release_reflected_kde_math-train.json``): the kernel density is
   summed at the 9 reflections of the point across the unit square's edges. :class:`ReleaseKDE`
   evaluates it exactly on a 0.005 grid once and interpolates bilinearly in between (error
   < 0.5 % of the density: the kernels' SDs are ≥ 0.039).
3. **Gate.** The table is consulted only if max(b) − b(S2) < 0.4, else the draft is kept.
4. **Lookup.** The action is read from a table indexed by the draft's token count snapped to the
   nearest of the release's bins (5 … 500), the step (0-based) and the belief snapped to the
   0.025 simplex grid (the release's ``get_closest_belief``); the table does not know whether
   the step is the solution's last. :class:`ReleaseTablePolicy` wraps a solved policy the same
   way (exact Q-values at the snapped point, ``final`` ignored). The release's table holds
   SARSOP's action per grid point; ours is the exact finite-horizon solution of the same model,
   so they can differ only where SARSOP's 20 s solve was not converged.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from trimpomdp._io import check_envelope, read_json
from trimpomdp.errors import InputError
from trimpomdp.resources import resource_path
from trimpomdp.routing.pomdp import pomdp_factory

KDE_FILE = "sim/trim_release_reflected_kde_math-train.json"
KDE_KIND = "release_kde_obs_model"
#: the release's token-count bins of the action table (``get_pomdp_policy.py``)
RELEASE_TOKEN_BINS = (5, 10, 20, 30, 40, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400,
                      450, 500)
RELEASE_BELIEF_STEP = 0.025
RELEASE_GATE = 0.4
#: the release re-scores the history with the strong step in it (point 1 of the docstring)
OBSERVE_STRONG_SCORES = True


class ReleaseKDE:
    """The release's reflected-KDE observation density: ``kde(min_prev, current) -> (3,)``.

    ``grid`` is the spacing of the exact evaluation grid (bilinear in between); ``pdf_exact``
    evaluates the release's formula directly.
    """

    def __init__(self, path: str | None = None, grid: float = 0.005) -> None:
        p = resource_path("data", KDE_FILE) if path is None else path
        doc = check_envelope(read_json(p), KDE_KIND, p)
        try:
            st = [doc["states"][str(c)] for c in range(3)]
            self._pts = [np.asarray(s["points"], float) for s in st]
            self._cov = [np.asarray(s["covariance"], float) for s in st]
        except (KeyError, TypeError) as exc:
            raise InputError(f"malformed release KDE file ({exc})", path=p) from None
        for c in range(3):
            if self._pts[c].ndim != 2 or self._pts[c].shape[1] != 2 or self._cov[c].shape != (2, 2):
                raise InputError(f"state {c}: points must be (n, 2), covariance (2, 2).", path=p)
        if not 0.0 < grid <= 0.05 or abs(round(1.0 / grid) * grid - 1.0) > 1e-9:
            raise InputError(f"grid must divide 1 and be in (0, 0.05]. Got {grid!r}.", field="grid")
        self.grid = float(grid)
        self._table: np.ndarray | None = None

    def _kernel_sum(self, c: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Σ over the 9 reflections of the class-c KDE at points (x, y) (1-D arrays)."""
        pts, cov = self._pts[c], self._cov[c]
        inv = np.linalg.inv(cov)
        norm = 1.0 / (2.0 * math.pi * math.sqrt(np.linalg.det(cov))) / pts.shape[0]
        out = np.zeros(x.shape[0])
        for xr in (x, 2.0 - x, -x):
            for yr in (y, 2.0 - y, -y):
                for s in range(0, x.shape[0], 2048):
                    dx = xr[s:s + 2048, None] - pts[None, :, 0]
                    dy = yr[s:s + 2048, None] - pts[None, :, 1]
                    q = inv[0, 0] * dx * dx + 2.0 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
                    out[s:s + 2048] += norm * np.exp(-0.5 * q).sum(axis=1)
        return out

    def pdf_exact(self, min_prev: Any, current: Any) -> np.ndarray:
        """The release's pdf per class at the points, exactly: shape (..., 3)."""
        x = np.atleast_1d(np.asarray(min_prev, float)).ravel()
        y = np.broadcast_to(np.asarray(current, float), np.shape(min_prev)).ravel()
        y = np.atleast_1d(y)
        out = np.stack([self._kernel_sum(c, x, y) for c in range(3)], axis=-1)
        return out.reshape(np.shape(min_prev) + (3,))

    def _grid_sum(self, c: int, g: np.ndarray) -> np.ndarray:
        """:meth:`_kernel_sum` on the grid g × g, by separation: with Σ⁻¹ = [[a, b], [b, d]],
        exp(−½ q) = exp(−bxy) · A_i(x) · B_i(y), so the kernel sum is exp(−bxy) · (A @ Bᵀ)."""
        pts, cov = self._pts[c], self._cov[c]
        (a, b), (_, d) = np.linalg.inv(cov)
        norm = 1.0 / (2.0 * math.pi * math.sqrt(np.linalg.det(cov))) / pts.shape[0]
        xi, yi = pts[:, 0], pts[:, 1]
        out = np.zeros((g.size, g.size))
        for xr in (g, 2.0 - g, -g):
            A = np.exp(-0.5 * a * (xr[:, None] - xi) ** 2 + b * xr[:, None] * yi - b * xi * yi)
            for yr in (g, 2.0 - g, -g):
                B = np.exp(-0.5 * d * (yr[:, None] - yi) ** 2 + b * xi * yr[:, None])
                out += np.exp(-b * xr[:, None] * yr[None, :]) * (A @ B.T)
        return norm * out

    @property
    def table(self) -> np.ndarray:
        """Exact pdf on the grid, shape (m, m, 3) over (min_prev, current)."""
        if self._table is None:
            g = np.linspace(0.0, 1.0, round(1.0 / self.grid) + 1)
            self._table = np.stack([self._grid_sum(c, g) for c in range(3)], axis=-1)
        return self._table

    def __call__(self, min_prev: float, current: float) -> tuple[float, float, float]:
        t = self.table
        m = t.shape[0] - 1
        u = min(max(float(min_prev), 0.0), 1.0) * m
        v = min(max(float(current), 0.0), 1.0) * m
        i, j = min(int(u), m - 1), min(int(v), m - 1)
        fu, fv = u - i, v - j
        d = ((1 - fu) * (1 - fv) * t[i, j] + fu * (1 - fv) * t[i + 1, j]
             + (1 - fu) * fv * t[i, j + 1] + fu * fv * t[i + 1, j + 1])
        return float(d[0]), float(d[1]), float(d[2])


@lru_cache(maxsize=2)
def release_kde(grid: float = 0.005) -> ReleaseKDE:
    """The bundled release KDE (grid evaluated once per process)."""
    return ReleaseKDE(grid=grid)


def snap_belief(b: Any, step: float = RELEASE_BELIEF_STEP, tol: float = 1e-9
                ) -> tuple[float, float, float]:
    """The release's ``get_closest_belief``: the nearest point of the ``step`` simplex grid."""
    p1, p2, p3 = (float(x) for x in b)
    N = round(1.0 / step)

    def snap(p: float) -> tuple[bool, int, int, int]:
        k = p * N
        return abs(k - round(k)) < tol, round(k), math.floor(k + tol), math.ceil(k - tol)

    on1, r1, f1, c1 = snap(p1)
    on2, r2, f2, c2 = snap(p2)
    on3 = snap(p3)[0]
    if on1 or on2 or on3:
        i1, i2 = r1, r2
    else:
        df1, dc1, df2, dc2 = p1 - f1 * step, c1 * step - p1, p2 - f2 * step, c2 * step - p2
        if min(df1, df2) + 2 * max(df1, df2) <= step + tol:
            i1, i2 = f1, f2
        elif min(dc1, dc2) + 2 * max(dc1, dc2) <= step + tol:
            i1, i2 = c1, c2
        elif df1 <= df2 + tol:
            i1, i2 = f1, c2
        else:
            i1, i2 = c1, f2
    i3 = N - i1 - i2
    if not 0 <= i3 <= N:
        raise InputError("belief outside the simplex grid.", field="belief")
    return i1 / N, i2 / N, i3 / N


def snap_tokens(tokens: float) -> int:
    """The release's token bin: the nearest of :data:`RELEASE_TOKEN_BINS` (ties: the lower)."""
    bins = np.asarray(RELEASE_TOKEN_BINS)
    return int(bins[int(np.argmin(np.abs(bins - float(tokens))))])


class ReleaseTablePolicy:
    """A solved TRIM policy read the release's way (point 4 of the module docstring): Q-values
    at the snapped token bin and belief, ``final`` ignored."""

    def __init__(self, policy: Any, *, snap: bool = True, use_final: bool = False) -> None:
        if not hasattr(policy, "q_values_unchecked"):
            raise InputError("policy must be a solved TrimPolicy.", field="policy")
        self.policy = policy
        self.model = policy.model
        self.lam = policy.lam
        self.snap = bool(snap)
        self.use_final = bool(use_final)

    def q_values_unchecked(self, step: int, tokens: float, b: np.ndarray, final: bool = False
                           ) -> np.ndarray:
        """Q-values as the release's table lookup sees the step."""
        if self.snap:
            b = np.asarray(snap_belief(b))
            tokens = float(snap_tokens(tokens))
        return np.asarray(self.policy.q_values_unchecked(step, tokens, b,
                                                         bool(final) and self.use_final))

    def q_values(self, step: int, tokens: float, belief: Any, *, final: bool = False
                 ) -> np.ndarray:
        """Checked :meth:`q_values_unchecked`."""
        b = self.policy.pomdp.check_query(step, tokens, belief, final=final)
        return self.q_values_unchecked(step, float(tokens), b, final)


def release_factory(policy: Any, *, density: Any = "kde", snap: bool = True,
                    use_final: bool = False, record: bool = False) -> Any:
    """Router factory of the release's runtime rule for a solved policy (module docstring).

    ``density="kde"`` is the release's reflected KDE; ``"continuous"`` the bilinear binned
    density (the earlier approximation). Simulate it with ``observe_regenerated=
    OBSERVE_STRONG_SCORES``.
    """
    dens = release_kde() if density == "kde" else density
    return pomdp_factory(ReleaseTablePolicy(policy, snap=snap, use_final=use_final),
                         belief="release", density=dens, gate=RELEASE_GATE, record=record)


__all__ = ["KDE_FILE", "OBSERVE_STRONG_SCORES", "RELEASE_BELIEF_STEP", "RELEASE_GATE",
           "RELEASE_TOKEN_BINS", "ReleaseKDE", "ReleaseTablePolicy", "release_factory",
           "release_kde", "snap_belief", "snap_tokens"]
