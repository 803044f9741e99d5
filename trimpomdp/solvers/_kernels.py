"""The one seam between the generic solvers and their native kernels.

Uses the C++ module ``trimpomdp_kernels`` (built from the top-level ``solvers/`` folder with
``pip install ./solvers``) when it is importable and of the expected ABI, else the numpy
references below, logging a one-line notice the first time a kernel runs.
``TRIMPOMDP_KERNELS=numpy`` forces the references (``=native`` makes a missing module an error).
Every function here has the same contract in both backends; tests/solvers/test_kernels.py checks
that they agree.
"""
from __future__ import annotations

import logging
import os
from types import ModuleType

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import SolverError

try:  # the optional native build unit: pip install ./solvers
    import trimpomdp_kernels as _installed
except ImportError:
    _installed = None

__all__ = ["CSRStack", "backend", "best_alpha", "best_alpha_csr", "dominated", "pivots",
           "sawtooth", "successors", "use"]

#: the kernels module ABI this seam is written for.
ABI = 1

_log = logging.getLogger("trimpomdp.solvers")
_NO_PIVOTS = np.zeros(0, dtype=np.int64)


def _load() -> ModuleType | None:
    want = os.environ.get("TRIMPOMDP_KERNELS", "auto").strip().lower()
    if want == "numpy":
        return None
    mod = _installed
    if mod is None:
        if want == "native":
            raise SolverError("TRIMPOMDP_KERNELS=native but trimpomdp_kernels is not installed "
                              "(pip install ./solvers)")
        return None
    if getattr(mod, "ABI", None) != ABI:
        if want == "native":
            raise SolverError(f"trimpomdp_kernels has ABI {getattr(mod, 'ABI', None)}; expected "
                              f"{ABI} (reinstall: pip install ./solvers)")
        return None
    return mod


_native: ModuleType | None = _load()
_noticed = False


def backend() -> str:
    """``"native"`` or ``"numpy"``: which implementation the kernels use."""
    return "native" if _native is not None else "numpy"


def use(name: str) -> None:
    """Switch backend at run time (``"native"`` or ``"numpy"``), e.g. for before/after timing."""
    global _native, _noticed
    if name == "numpy":
        _native = None
        _noticed = True
    elif name == "native":
        os.environ["TRIMPOMDP_KERNELS"] = "native"
        try:
            _native = _load()
        finally:
            os.environ.pop("TRIMPOMDP_KERNELS", None)
    else:
        raise ValueError(f"backend must be 'native' or 'numpy'. Got {name!r} instead.")


def _notice() -> None:
    global _noticed
    if not _noticed:
        _noticed = True
        if _native is None and os.environ.get("TRIMPOMDP_KERNELS", "").lower() != "numpy":
            _log.warning("trimpomdp: native solver kernels not installed (pip install ./solvers); "
                         "using the numpy reference")


def _f64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _i64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


# -- best alpha vector per row ---------------------------------------------------------------
def best_alpha(J: np.ndarray, G: np.ndarray,
               support: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``J[m]``: (``argmax_k G[k]·J[m]``, the max). ``G`` must be non-empty.

    ``support`` optionally lists the only columns where rows of ``J`` can be non-zero.
    """
    _notice()
    if _native is not None:
        return _native.best_alpha(_f64(J), _f64(G),
                                  _NO_PIVOTS if support is None else _i64(support))
    scores = G @ np.atleast_2d(J).T                     # (N, M)
    idx = scores.argmax(axis=0)
    return idx, scores[idx, np.arange(scores.shape[1])]


def best_alpha_csr(B: sp.csr_matrix, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`best_alpha` for the rows of a CSR matrix (e.g. the beliefs of a tree)."""
    _notice()
    if _native is not None:
        return _native.best_alpha_csr(_i64(B.indptr), _i64(B.indices), _f64(B.data), _f64(G))
    V = np.asarray(B @ G.T)                             # (M, N)
    idx = V.argmax(axis=1)
    return idx, V[np.arange(V.shape[0]), idx]


# -- successor beliefs ---------------------------------------------------------------------
class CSRStack:
    """One POMDP's transitions for :func:`successors`: T[a] in CSR, stacked, with O (A, S, nO).

    ``Tt`` (the numpy reference's transposed matrices, dense or sparse) is kept beside them.
    The stacked arrays are checked once here; the native successor kernel trusts them.
    """

    def __init__(self, T: list, Tt: list, O: np.ndarray) -> None:
        mats = [sp.csr_matrix(t) for t in T]
        offs = np.cumsum([0] + [m.nnz for m in mats[:-1]])
        self.indptr = _i64(np.stack([m.indptr.astype(np.int64) + o for m, o in zip(mats, offs)]))
        self.indices = _i64(np.concatenate([m.indices for m in mats]))
        self.data = _f64(np.concatenate([m.data for m in mats]))
        self.O = _f64(O)
        self.OT = [np.ascontiguousarray(O[a].T) for a in range(O.shape[0])]
        self.Tt = Tt
        if _native is not None:
            _native.check_csr(self.indptr, self.indices, O.shape[1])


def successors(K: CSRStack, b: np.ndarray, out: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P[a, o], unnormalised next beliefs J[a, o, s'] = (b T[a])(s') O[a, s', o], support.

    ``support`` holds the sorted states s' with J[a, o, s'] > 0 for some (a, o). ``out`` (an
    (A, nO, S) float64 C array) receives J when given, to save allocating it.
    """
    _notice()
    A, S, nO = K.O.shape
    b = _f64(b)
    if b.shape != (S,):
        raise SolverError(f"a belief must have {S} entries. Got shape {b.shape} instead.")
    J = np.empty((A, nO, S)) if out is None else out
    if _native is not None:
        P, supp = _native.successors(b, K.indptr, K.indices, K.data, K.O, J)
        return P, J, supp
    for a in range(A):
        J[a] = (K.Tt[a] @ b)[None, :] * K.OT[a]
    return J.sum(axis=2), J, np.flatnonzero(J.any(axis=(0, 1)))


# -- sawtooth interpolation ------------------------------------------------------------------
def pivots(indptr: np.ndarray, idx: np.ndarray, n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket points by a pivot state of their support (its rarest state among all points).

    Returns (order, pivot_ptr) for :func:`sawtooth`: the points with pivot s are
    ``order[pivot_ptr[s]:pivot_ptr[s + 1]]``.
    """
    n = indptr.shape[0] - 1
    freq = np.bincount(idx[:indptr[-1]], minlength=n_states)
    lens = np.diff(indptr)
    owner = np.repeat(np.arange(n), lens)
    f = freq[idx[:indptr[-1]]]
    order_in = np.lexsort((f, owner))             # per point, rarest state first
    first = indptr[:-1]
    piv = idx[:indptr[-1]][order_in[first]] if n else _NO_PIVOTS
    order = np.argsort(piv, kind="stable").astype(np.int64)
    ptr = np.zeros(n_states + 1, dtype=np.int64)
    np.cumsum(np.bincount(piv, minlength=n_states), out=ptr[1:])
    return order, ptr


def sawtooth(B: np.ndarray, corner: np.ndarray, indptr: np.ndarray, idx: np.ndarray,
             val: np.ndarray, gain: np.ndarray, order: np.ndarray = _NO_PIVOTS,
             pivot_ptr: np.ndarray = _NO_PIVOTS, n_sorted: int = 0,
             inv: np.ndarray | None = None) -> np.ndarray:
    """Sawtooth upper bound at each row of ``B`` (M, S).

    Points k are CSR rows (``indptr``, ``idx``, ``val``) with ``gain[k] = v_k − corner·b_k``:
    UB(b) = corner·b + min(0, min_k φ_k(b) gain_k), φ_k(b) = min_{s ∈ supp b_k} b(s) / b_k(s).
    The first ``n_sorted`` points may come bucketed by :func:`pivots` (``order``,
    ``pivot_ptr``), and ``inv = 1 / val`` may be passed precomputed: both only speed the
    native kernel up.
    """
    _notice()
    B = np.atleast_2d(B)
    if _native is not None:
        return _native.sawtooth(_f64(B), _f64(corner), _i64(indptr), _i64(idx),
                                _f64(1.0 / val if inv is None else inv), _f64(gain),
                                _i64(order), _i64(pivot_ptr), int(n_sorted))
    base = B @ corner
    n = gain.shape[0]
    use_k = np.flatnonzero(gain < 0)
    if n == 0 or use_k.size == 0:
        return base
    lens = np.diff(indptr)[use_k]
    pos = np.repeat(indptr[use_k] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) \
        + np.arange(int(lens.sum()))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    phi = np.minimum.reduceat(B[:, idx[pos]] / val[pos], starts, axis=1)   # (M, n_useful)
    corr = np.minimum((phi * gain[use_k]).min(axis=1), 0.0)
    return base + corr


# -- pruning ---------------------------------------------------------------------------------
def dominated(G: np.ndarray, alpha: np.ndarray, tol: float) -> np.ndarray:
    """Mask of the rows of ``G`` that are pointwise ``<= alpha + tol``."""
    _notice()
    if _native is not None:
        return _native.dominated(_f64(G), _f64(alpha), float(tol))
    return np.all(G <= alpha + tol, axis=1)
