"""trimpomdp's estimator base (no sklearn import) against scikit-learn's own BaseEstimator."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator as SkBase
from sklearn.base import clone

from trimpomdp._estimator import BaseEstimator


def _pair(base):
    class Inner(base):
        def __init__(self, bins=10, eps=1e-3):
            self.bins = bins
            self.eps = eps

    class Outer(base):
        def __init__(self, inner=None, alpha=0.5, weights=None, name="x"):
            self.inner = inner
            self.alpha = alpha
            self.weights = weights
            self.name = name

    return Inner, Outer


def test_params_repr_and_clone_match_sklearn():
    ours, theirs = _pair(BaseEstimator), _pair(SkBase)
    for kw in ({}, {"alpha": 2.0, "name": "y"}, {"weights": [1, 2]}):
        a = ours[1](inner=ours[0](bins=5), **kw)
        b = theirs[1](inner=theirs[0](bins=5), **kw)
        pa, pb = a.get_params(), b.get_params()
        assert set(pa) == set(pb)
        assert {k: v for k, v in pa.items() if k != "inner"} == \
            {k: v for k, v in pb.items() if k != "inner"}
        assert repr(a).replace(" ", "") == repr(b).replace(" ", "").replace("\n", "")
        c = clone(a)  # scikit-learn's clone works on our estimators
        assert type(c) is type(a) and c is not a and c.get_params(deep=False).keys() == \
            a.get_params(deep=False).keys() and c.inner is not a.inner
    a = ours[1](inner=ours[0]())
    assert a.set_params(alpha=3.0, inner__bins=7) is a
    assert a.alpha == 3.0 and a.inner.bins == 7
    with pytest.raises(ValueError, match="Invalid parameter 'beta'"):
        a.set_params(beta=1)
    assert "weights=array" in repr(ours[1](weights=np.arange(3)))


def test_act_and_solve_paths_do_not_import_sklearn():
    code = ("import sys, trimpomdp.tuning, trimpomdp.cli.solve, trimpomdp.cli.act, "
            "trimpomdp.sim.calibrated, trimpomdp.observation.io; "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
