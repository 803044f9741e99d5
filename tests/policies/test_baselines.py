import pytest

from trimpomdp import InputError, RouteAction
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.baselines import (
    OracleQueryRule,
    QueryLevelRule,
    RandomRule,
    StrongOnlyRule,
    WeakOnlyRule,
)
from trimpomdp.routing.threshold import ThresholdRule

R, C = RouteAction.REGENERATE, RouteAction.CONTINUE


def run(policy, scores, info=None):
    r = StepRouter(policy)
    r.reset(info)
    return [r.decide(s, 10, t).action for t, s in enumerate(scores)]


def test_threshold_rule_and_extremes():
    assert run(ThresholdRule(0.5), [0.4, 0.5, 0.6]) == [R, C, C]
    assert run(ThresholdRule(0.0), [0.0, 0.3]) == [C, C]
    assert run(ThresholdRule(1.0), [0.99, 1.0]) == [R, C]
    with pytest.raises(InputError):
        ThresholdRule(1.5)


def test_weak_strong():
    assert run(WeakOnlyRule(), [0.0, 0.1]) == [C, C]
    assert run(StrongOnlyRule(), [1.0, 0.9]) == [R, R]


def test_query_level_decides_once():
    assert run(QueryLevelRule(0.5), [0.2, 0.99, 0.99]) == [R, R, R]
    assert run(QueryLevelRule(0.5), [0.9, 0.01, 0.01]) == [C, C, C]


def test_random_rate_and_reproducible():
    acts = run(RandomRule(0.3, random_state=1), [0.5] * 30)
    acts2 = run(RandomRule(0.3, random_state=1), [0.5] * 30)
    assert acts == acts2
    many = sum(a is R for _ in range(1) for a in run(RandomRule(0.3, 2), [0.5] * 30))
    assert 2 <= many <= 18


def test_oracle_needs_info_and_routes():
    with pytest.raises(InputError):
        run(OracleQueryRule(), [0.5])
    assert run(OracleQueryRule(), [0.5, 0.5], {"weak_correct": False,
                                                 "strong_correct": True}) == [R, R]
    assert run(OracleQueryRule(), [0.5], {"weak_correct": True, "strong_correct": True}) == [C]
    assert run(OracleQueryRule(), [0.5], {"weak_correct": False, "strong_correct": False}) == [C]
