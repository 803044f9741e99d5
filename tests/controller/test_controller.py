import json
import math

import numpy as np
import pytest

from trimpomdp import InputError, RouteAction
from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.types import BaseRule
from trimpomdp.routing.threshold import ThresholdRule


class RecordingPolicy(BaseRule):
    name = "rec"

    def __init__(self, actions):
        self.actions, self.seen = actions, []

    def route(self, ctx, belief, state):
        self.seen.append(ctx)
        return RouteAction(self.actions[ctx.step]), None, "scripted"


def test_min_and_product_bookkeeping():
    pol = RecordingPolicy([0, 1, 0, 1, 0])
    r = StepRouter(pol)
    r.decide(0.9, 10, 0)
    r.decide(0.1, 10, 1)          # regenerated: draft score discarded, strong step unobserved
    r.decide(0.8, 10, 2)
    r.decide(0.2, 10, 3)
    r.observe_regenerated(0.5)    # strong step's score is passed
    r.decide(0.7, 10, 4)
    mins = [c.min_prev for c in pol.seen]
    prods = [c.prod_prev for c in pol.seen]
    assert mins == pytest.approx([1.0, 0.9, 0.9, 0.8, 0.5])
    assert prods == pytest.approx([1.0, 0.9, 0.9, 0.72, 0.36])
    assert [h[2] for h in pol.seen[-1].history] == [0, 1, 0, 1]


def test_observe_regenerated_only_after_regenerate():
    r = StepRouter(ThresholdRule(0.5))
    r.decide(0.9, 10, 0)
    with pytest.raises(InputError):
        r.observe_regenerated(0.5)
    r.decide(0.1, 10, 1)
    r.observe_regenerated(0.95)
    with pytest.raises(InputError):
        r.observe_regenerated(0.95)


@pytest.mark.parametrize("score,tokens,step", [
    (math.nan, 10, 0), (1.2, 10, 0), (-0.1, 10, 0), ("0.5", 10, 0), (None, 10, 0),
    (0.5, 0, 0), (0.5, -3, 0), (0.5, 2.5, 0), (0.5, True, 0),
    (0.5, 10, 30), (0.5, 10, -1), (0.5, 10, 1), (0.5, 10, 0.0)])
def test_bad_input_raises_input_error(score, tokens, step):
    r = StepRouter(ThresholdRule(0.5))
    with pytest.raises(InputError):
        r.decide(score, tokens, step)
    assert r.step == 0 and r.trace == []  # nothing recorded on bad input


def test_step_beyond_horizon_after_30_steps():
    r = StepRouter(ThresholdRule(0.0))
    for t in range(30):
        r.decide(0.9, 5, t)
    with pytest.raises(InputError, match="horizon"):
        r.decide(0.9, 5, 30)


def test_trace_is_json_and_reset_clears(default_model):
    from trimpomdp.routing.pomdp import PomdpRule

    class Fake:
        lam = 0.1

        def q_values(self, step, tokens, belief, final=False):
            return np.array([belief[0], belief[2]])

    r = StepRouter(PomdpRule(Fake()), BayesFilterUpdater.from_model(default_model))
    d = r.decide(0.05, 40, 0)
    assert d.belief is not None and d.q is not None and d.belief.probs[2] > d.belief.probs[0]
    assert d.action is RouteAction.REGENERATE
    r.decide(0.99, 40, 1, final=True)
    json.dumps(r.trace)
    assert r.trace[1]["final"] is True and len(r.trace[0]["belief"]) == 3
    r.reset()
    assert r.trace == [] and r.step == 0 and r.belief is None


def test_gate_closes_to_continue(default_model):
    from trimpomdp.routing.baselines import StrongOnlyRule

    class AlwaysRegen(StrongOnlyRule):
        uses_belief = True

    r = StepRouter(AlwaysRegen(), SingleObservationUpdater.from_model(default_model, gate=0.4))
    d = r.decide(0.999, 30, 0)   # clearly S0: gate closed
    assert d.action is RouteAction.CONTINUE and d.reason.startswith("gate")
    d = r.decide(0.02, 30, 1)    # low score: S2 plausible, policy consulted
    assert d.action is RouteAction.REGENERATE


def test_belief_policy_requires_updater():
    from trimpomdp.routing.pomdp import PomdpRule

    class Fake:
        def q_values(self, *a, **k):
            return np.zeros(2)

    with pytest.raises(InputError, match="updater"):
        StepRouter(PomdpRule(Fake()))


def test_zero_evidence_is_flagged_in_trace():
    from trimpomdp.belief import BayesFilterUpdater, trim_transitions

    class Echo(BaseRule):
        name, uses_belief = "echo", True

        def route(self, ctx, belief, state):
            return RouteAction.CONTINUE, None, "echo"

    up = BayesFilterUpdater(trim_transitions(0.9, 0.97), lambda a, b: (0.0, 0.0, 0.0))
    r = StepRouter(Echo(), up)
    d = r.decide(0.4, 10, 0)
    assert d.belief.fallback and "zero evidence" in d.reason
    assert r.trace[0]["belief_fallback"] is True
    assert all(math.isfinite(x) for x in r.trace[0]["belief"])
