"""TabularPOMDP: validation of shapes, stochastic rows and names; sparse/dense equivalence."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from trimpomdp.errors import InputError
from trimpomdp.pomdp.tabular import TabularPOMDP


def tiny(**over):
    kw = {"T": np.array([np.eye(2), [[0.5, 0.5], [0.5, 0.5]]]),
              "O": np.full((2, 2, 2), 0.5), "R": np.array([[0.0, 1.0], [2.0, 3.0]]),
              "discount": 0.9, "b0": np.array([0.5, 0.5])}
    kw.update(over)
    return TabularPOMDP(**kw)


def test_valid_model_has_sizes_and_default_names():
    m = tiny()
    assert (m.n_actions, m.n_states, m.n_observations) == (2, 2, 2)
    assert m.state_names == ("s0", "s1") and m.action_names == ("a0", "a1")
    assert not m.is_sparse and m.nnz_T() == 6


@pytest.mark.parametrize("over, match", [
    ({"T": np.ones((2, 2, 2))}, "every row of T must sum to 1"),
    ({"O": np.ones((2, 2, 2))}, "every row of O must sum to 1"),
    ({"R": np.zeros((2, 3))}, "R must have shape"),
    ({"T": np.ones((2, 3, 3)) / 3}, "T must have shape"),
    ({"b0": np.array([0.7, 0.7])}, "b0 must sum to 1"),
    ({"b0": np.array([1.5, -0.5])}, "non-negative"),
    ({"discount": 1.5}, "discount must be a number in"),
    ({"R": np.array([[np.nan, 0], [0, 0]])}, "R must have finite"),
    ({"terminal": np.array([1, 0])}, "terminal must be a boolean mask"),
    ({"state_names": ("x", "x")}, "must be unique"),
    ({"action_names": ("x",)}, "must have length 2"),
])
def test_invalid_models_raise_input_error(over, match):
    with pytest.raises(InputError, match=match):
        tiny(**over)


def test_rows_within_tolerance_are_accepted():
    T = np.array([np.eye(2), [[0.5, 0.5 + 9e-7], [0.5, 0.5]]])
    tiny(T=T)
    with pytest.raises(InputError, match=r"Row \(1, 0\)"):
        tiny(T=np.array([np.eye(2), [[0.5, 0.5 + 2e-6], [0.5, 0.5]]]))


def test_sparse_T_matches_dense_and_checks_rows():
    m = tiny()
    ms = m.with_sparse_T()
    assert ms.is_sparse and np.array_equal(ms.dense_T(), m.T)
    bad = (sp.csr_matrix(np.eye(2)), sp.csr_matrix([[0.5, 0.2], [0.5, 0.5]]))
    with pytest.raises(InputError, match=r"Row \(1, 0\) sums to 0.7"):
        tiny(T=bad)


def test_absorbing_makes_terminal_states_zero_reward_self_loops():
    m = tiny(terminal=np.array([False, True]))
    ab = m.absorbing()
    assert np.array_equal(ab.T[:, 1, :], [[0, 1], [0, 1]])
    assert np.all(ab.R[:, 1] == 0) and ab.R[1, 0] == 2.0
    abs_sparse = m.with_sparse_T().absorbing()
    assert np.array_equal(abs_sparse.dense_T(), ab.T)
