import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.evaluation.curves import points_from_records
from trimpomdp.evaluation.metrics import CurvePoint, References
from trimpomdp.evaluation.plots import (
    plot_belief_trajectories,
    plot_cost_accuracy,
    save,
    simplex_xy,
)


def test_points_from_records():
    recs = [{"policy": "a", "correct": True, "strong_tokens": 10, "param": 0.1},
            {"policy": "a", "correct": False, "strong_tokens": 30, "param": 0.1},
            {"policy": "b", "correct": True, "strong_tokens": 0}]
    pts = points_from_records(recs)
    assert pts["a"][0].accuracy == 0.5 and pts["a"][0].strong_tokens == 20 and pts["a"][0].n == 2
    with pytest.raises(InputError):
        points_from_records([{"correct": True}])


def test_simplex_corners():
    np.testing.assert_allclose(simplex_xy([1, 0, 0]), [0, 0])
    np.testing.assert_allclose(simplex_xy([0, 0, 1]), [0.5, np.sqrt(3) / 2])


def test_plots_write_files(tmp_path):
    ref = References(weak_accuracy=0.36, strong_accuracy=0.73, strong_tokens=495,
                     oracle_accuracy=0.8)
    ax = plot_cost_accuracy({"thr": [CurvePoint(policy="thr", accuracy=0.5, strong_tokens=70),
                                     CurvePoint(policy="thr", accuracy=0.7, strong_tokens=200)]},
                            ref, measured={"thr": [CurvePoint(policy="thr", accuracy=0.51,
                                                              strong_tokens=71)]})
    assert len(ax.lines) == 5
    save(ax, tmp_path / "c.png")
    tr = [[{"belief": [0.8, 0.1, 0.1], "action": "continue"},
           {"belief": [0.2, 0.1, 0.7], "action": "regenerate", "belief_fallback": True}]]
    ax2 = plot_belief_trajectories(tr)
    save(ax2, tmp_path / "b.svg")
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "b.svg").exists()
