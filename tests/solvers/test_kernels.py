"""Native kernels (./solvers, trimpomdp_kernels) against the numpy references of _kernels.py."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from trimpomdp.pomdp.cassandra import read_pomdp
from trimpomdp.solvers import _kernels
from trimpomdp.solvers.bounds import PreparedPOMDP, SawtoothUpperBound
from trimpomdp.solvers.sarsop import AlphaSet, SARSOPSolver

try:
    import trimpomdp_kernels as native
except ImportError:  # pragma: no cover - depends on the machine
    native = None

needs_native = pytest.mark.skipif(
    native is None, reason="native kernels not built (pip install ./solvers)")


@pytest.fixture
def both():
    """Run the body once per backend: yields a function switching to one."""
    saved = _kernels.backend()
    yield _kernels.use
    _kernels.use(saved)


def _sparse_rows(rng, m, s, density):
    X = rng.random((m, s)) * (rng.random((m, s)) < density)
    X[0] = 0.0  # an all-zero row
    return X


@needs_native
@pytest.mark.parametrize("density", [0.05, 0.5, 1.0])
def test_best_alpha_matches_numpy(both, density):
    rng = np.random.default_rng(1)
    J = _sparse_rows(rng, 40, 70, density)
    G = rng.normal(size=(25, 70))
    both("numpy")
    i0, v0 = _kernels.best_alpha(J, G)
    both("native")
    i1, v1 = _kernels.best_alpha(J, G)
    i2, v2 = _kernels.best_alpha(J, G, np.flatnonzero(J.any(axis=0)))
    np.testing.assert_allclose(v1, v0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v2, v0, rtol=1e-12, atol=1e-12)
    assert np.array_equal(i1, i0) and np.array_equal(i2, i0)


@needs_native
def test_best_alpha_csr_matches_numpy(both):
    rng = np.random.default_rng(2)
    B = sp.csr_matrix(_sparse_rows(rng, 30, 50, 0.2))
    G = rng.normal(size=(12, 50))
    both("numpy")
    i0, v0 = _kernels.best_alpha_csr(B, G)
    both("native")
    i1, v1 = _kernels.best_alpha_csr(B, G)
    np.testing.assert_allclose(v1, v0, rtol=1e-12, atol=1e-12)
    assert np.array_equal(i1, i0)


@needs_native
@pytest.mark.parametrize("sparse", [False, True])
def test_successors_match_numpy(both, sparse):
    rng = np.random.default_rng(3)
    A, S, nO = 4, 30, 5
    T = rng.random((A, S, S)) * (rng.random((A, S, S)) < (0.1 if sparse else 1.0))
    T[:, np.arange(S), np.arange(S)] += 0.1
    T /= T.sum(axis=2, keepdims=True)
    O = rng.random((A, S, nO))
    O /= O.sum(axis=2, keepdims=True)
    mats = [sp.csr_matrix(T[a]) if sparse else T[a] for a in range(A)]
    tts = [sp.csr_matrix(T[a].T) if sparse else np.ascontiguousarray(T[a].T) for a in range(A)]
    b = rng.random(S) * (rng.random(S) < 0.3)
    b[0] += 0.1
    b /= b.sum()
    both("numpy")
    K = _kernels.CSRStack(mats, tts, O)
    P0, J0, s0 = _kernels.successors(K, b)
    both("native")
    K = _kernels.CSRStack(mats, tts, O)
    out = np.full((A, nO, S), 7.0)  # stale values must be overwritten
    P1, J1, s1 = _kernels.successors(K, b, out)
    assert J1 is out
    np.testing.assert_allclose(P1, P0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(J1, J0, rtol=1e-12, atol=1e-15)
    assert np.array_equal(s1, s0)


@needs_native
def test_check_csr_refuses_bad_indices():
    with pytest.raises(ValueError, match="out of range"):
        native.check_csr(np.array([[0, 1, 2]]), np.array([0, 5]), 2)


def _points(rng, S, n):
    U = SawtoothUpperBound(rng.random(S) + 1.0)
    for _ in range(n):
        b = rng.random(S) * (rng.random(S) < 0.3)
        b[rng.integers(S)] += 0.2
        U.add(b / b.sum(), float(rng.random()))
    return U


@needs_native
def test_sawtooth_matches_numpy_with_and_without_pivots(both):
    rng = np.random.default_rng(4)
    S = 25
    U = _points(rng, S, 60)
    B = _sparse_rows(rng, 50, S, 0.6)
    B[0, 3] = 1.0
    B = B / np.maximum(B.sum(axis=1, keepdims=True), 1e-300)
    both("numpy")
    ref = U.values(B)                  # the bound's own numpy path
    n = len(U)
    ptr, idx, val = U._ptr[:n + 1], U._bidx[:U._ptr[n]], U._bval[:U._ptr[n]]
    gain = U.v - U.c
    simple = _kernels.sawtooth(B, U.corner, ptr, idx, val, gain)
    np.testing.assert_allclose(simple, ref, rtol=1e-12, atol=1e-12)
    both("native")
    plain = _kernels.sawtooth(B, U.corner, ptr, idx, val, gain)
    k = n - 7  # the first k points bucketed, the last 7 scanned one by one
    order, pptr = _kernels.pivots(ptr[:k + 1], idx[:ptr[k]], S)
    piv = _kernels.sawtooth(B, U.corner, ptr, idx, val, gain, order, pptr, k)
    np.testing.assert_allclose(plain, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(piv, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(U.values(B), ref, rtol=1e-12, atol=1e-12)


@needs_native
def test_dominated_matches_numpy(both):
    rng = np.random.default_rng(5)
    G = rng.normal(size=(40, 9))
    alpha = G[3] + 0.5
    both("numpy")
    d0 = _kernels.dominated(G, alpha, 1e-12)
    both("native")
    d1 = _kernels.dominated(G, alpha, 1e-12)
    assert d0[3] and np.array_equal(d0, d1)


def test_alpha_set_drops_dominated_vectors_in_place():
    G = AlphaSet(np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0], [0.5, 0.5]]), np.arange(4))
    G.add(np.array([0.6, 0.6]), 1, np.array([0]))     # dominates rows 0 and 3
    assert len(G) == 3
    assert sorted(map(tuple, G.G.tolist())) == [(-1.0, 1.0), (0.6, 0.6), (1.0, -1.0)]
    assert sorted(G.ids.tolist()) == [1, 2, 4] and G.a.shape == (3,)
    assert G.alias == {0: 4, 3: 4}


@needs_native
@pytest.mark.parametrize("name", ["Tiger.pomdp", "mini-hall2.pomdp", "cheese95.pomdp"])
def test_sarsop_converges_to_the_same_value_on_both_backends(both, shared_data, name):
    m = read_pomdp(os.path.join(shared_data, "pomdp", name))
    res = {}
    for be in ("numpy", "native"):
        both(be)
        _, info = SARSOPSolver(precision=1e-3, timeout=20).solve_info(m)
        assert info.converged
        res[be] = info
    assert res["native"].lower == pytest.approx(res["numpy"].lower, abs=2e-3)
    assert res["native"].upper == pytest.approx(res["numpy"].upper, abs=2e-3)


def test_prepared_successors_are_bayes_updates():
    m = read_pomdp(os.path.join(os.path.dirname(__file__), "..", "pomdp", "files",
                                "tiger_named.pomdp"))
    K = PreparedPOMDP(m)
    P, J = K.successors(K.b0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(J.sum(axis=2), P)


def test_numpy_fallback_with_a_one_line_notice(tmp_path):
    """Without the module the seam uses numpy and says so once, on one line."""
    code = ("import sys; sys.modules['trimpomdp_kernels'] = None\n"
            "from trimpomdp.solvers import _kernels\n"
            "import numpy as np\n"
            "print(_kernels.backend())\n"
            "_kernels.dominated(np.zeros((2, 2)), np.zeros(2), 0.0)\n"
            "_kernels.dominated(np.zeros((2, 2)), np.zeros(2), 0.0)\n")
    env = {k: v for k, v in os.environ.items() if k != "TRIMPOMDP_KERNELS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True, cwd=tmp_path)
    assert proc.stdout.strip() == "numpy"
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "pip install ./solvers" in lines[0]


def test_forced_numpy_backend_is_silent(tmp_path):
    code = "from trimpomdp.solvers import _kernels; print(_kernels.backend())"
    env = dict(os.environ, TRIMPOMDP_KERNELS="numpy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True, cwd=tmp_path)
    assert proc.stdout.strip() == "numpy" and proc.stderr.strip() == ""
