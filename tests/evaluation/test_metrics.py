import json

import pytest

from trimpomdp import InputError
from trimpomdp.evaluation.metrics import (
    CurvePoint,
    References,
    budget_accuracy,
    cpt,
    delta_ibc,
    ibc_summary,
    metrics_row,
    pgr,
)
from trimpomdp.evaluation.report import markdown_table, write_report

REF = References(weak_accuracy=0.4, strong_accuracy=0.8, strong_tokens=500.0)


def pts(*ats):
    return [CurvePoint(policy="p", accuracy=a, strong_tokens=t, param=i) for i, (a, t) in
            enumerate(ats)]


def test_pgr_and_cost():
    assert pgr(0.6, REF) == pytest.approx(0.5) and REF.cost(100) == pytest.approx(0.2)


def test_cpt_cheapest_measured_point_not_interpolation():
    # non-monotone curve: the cheap point at 0.1 reaches PGR 0.5, a pricier one dips below
    p = pts((0.5, 20), (0.61, 50), (0.58, 100), (0.73, 200), (0.79, 400))
    assert cpt(p, 0.5, REF) == pytest.approx(0.1)
    assert cpt(p, 0.8, REF) == pytest.approx(0.4)    # 0.73 -> PGR 0.825
    assert cpt(p, 0.95, REF) == pytest.approx(0.8)   # 0.79 -> 0.975
    assert cpt(pts((0.5, 20)), 0.95, REF) is None
    with pytest.raises(InputError):
        cpt(p, 50, REF)


def test_ibc_aggregations_are_labelled():
    p = pts((0.5, 50), (0.7, 100), (0.4, 0.0))
    s = ibc_summary(p, REF)
    ibc_s = 0.4 / 500
    d = [(0.1 / 50 - ibc_s) / ibc_s, (0.3 / 100 - ibc_s) / ibc_s]
    assert [x["delta_ibc"] for x in s["pointwise"]] == pytest.approx(d)  # zero-cost point skipped
    assert s["mean"] == pytest.approx(sum(d) / 2) and s["best"] == pytest.approx(max(d))
    assert s["best_param"] == 1
    assert delta_ibc(CurvePoint(policy="s", accuracy=0.8, strong_tokens=500), REF) == \
        pytest.approx(0.0)


def test_budget_accuracy():
    p = pts((0.5, 40), (0.65, 49), (0.7, 120))
    assert budget_accuracy(p, 0.1, REF) == pytest.approx(0.65)
    assert budget_accuracy(p, 0.05, REF) is None


def test_row_table_and_report(tmp_path):
    row = metrics_row("thr", pts((0.5, 40), (0.7, 120)), REF)
    md = markdown_table([row])
    assert "CPT(50%)" in md and "—" in md  # CPT95 not reached
    write_report(tmp_path / "r", [row], title="T", notes=["n"], n=5)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["kind"] == "results_table" and doc["rows"][0]["policy"] == "thr"
    with pytest.raises(InputError):
        metrics_row("x", [], REF)


def test_invalid_points_and_references():
    with pytest.raises(InputError):
        CurvePoint(policy="p", accuracy=1.2, strong_tokens=1)
    with pytest.raises(InputError):
        References(weak_accuracy=0.4, strong_accuracy=0.8, strong_tokens=0.0)
