"""Routers from one factory never share per-problem state: interleaved problems decide exactly as
each problem alone, for every spec kind (the concurrency bug of issue 12 stays fixed)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from trimpomdp.errors import InputError
from trimpomdp.resources import resource_path
from trimpomdp.routing.router import RouterFactory
from trimpomdp.routing.spec import KINDS, PolicySpec, router_factory


def _learned(kind: str) -> str:
    root = resource_path("models", "learned")
    files = sorted(root.glob(f"{kind}_*.json"))
    if not files:
        pytest.skip(f"no bundled {kind} checkpoint in {root}")
    return str(files[0])


def _specs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return ["thr:0.5", "pomdp:0.3", "pomdp-filter:0.3", f"agg:{_learned('agg')}",
            f"seq:{_learned('seq')}", "query:0.6", "random:0.4", "explore:0.3", "weak",
            "strong", "oracle"]


def _problems(n: int = 4) -> list[dict]:
    """Problems whose PRM scores vary by problem (and so do their routes)."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        L = int(rng.integers(5, 12))
        base = 0.2 + 0.2 * i
        out.append({"key": f"p{i}", "scores": np.clip(base + 0.35 * rng.standard_normal(L), 0, 1),
                    "tokens": rng.integers(10, 200, L),
                    "info": {"key": f"p{i}", "weak_correct": i % 2 == 0,
                             "strong_correct": i % 3 != 0}})
    return out


def _alone(make: RouterFactory, p: dict) -> list[tuple]:
    r = make(p["info"])
    L = len(p["scores"])
    return [_dec(r.decide(float(s), int(n), t, t == L - 1)) for t, (s, n) in
            enumerate(zip(p["scores"], p["tokens"]))]


def _dec(d) -> tuple:
    return (int(d.action), None if d.q is None else tuple(round(x, 12) for x in d.q),
            None if d.belief is None else tuple(round(x, 12) for x in d.belief.probs), d.reason)


def test_every_kind_is_covered(tmp_path_factory):
    covered = {s.partition(":")[0] for s in _specs(tmp_path_factory)}
    assert covered == set(KINDS)


@pytest.mark.parametrize("order", ["round_robin", "shuffled"])
def test_interleaved_problems_decide_as_alone(tmp_path_factory, default_model, order):
    problems = _problems(4)
    for spec in _specs(tmp_path_factory):
        make = router_factory(spec, default_model)
        alone = [_alone(make, p) for p in problems]
        routers = [make(p["info"]) for p in problems]
        got: list[list[tuple]] = [[] for _ in problems]
        events = [(i, t) for t in range(12) for i, p in enumerate(problems)
                  if t < len(p["scores"])]
        if order == "shuffled":  # any interleaving that keeps each problem's steps in order
            rng = np.random.default_rng(3)
            queues = {i: [e for e in events if e[0] == i] for i in range(len(problems))}
            events = []
            while any(queues.values()):
                i = int(rng.choice([k for k, q in queues.items() if q]))
                events.append(queues[i].pop(0))
        for i, t in events:
            p = problems[i]
            L = len(p["scores"])
            got[i].append(_dec(routers[i].decide(float(p["scores"][t]), int(p["tokens"][t]), t,
                                                 t == L - 1)))
        assert got == alone, spec


def test_query_rule_keeps_its_own_decision_per_problem(default_model):
    make = router_factory("query:0.5")
    a, b = make({"key": "a"}), make({"key": "b"})
    assert a.decide(0.1, 10, 0).action == 1  # a goes strong
    assert b.decide(0.9, 10, 0).action == 0  # b goes weak; must not flip a
    assert a.decide(0.9, 10, 1).action == 1 and b.decide(0.1, 10, 1).action == 0


def test_random_rule_streams_are_keyed_by_problem():
    make = router_factory("random:0.5")
    seq = lambda r: [int(r.decide(0.5, 10, t).action) for t in range(20)]  # noqa: E731
    assert seq(make({"key": "x"})) == seq(make({"key": "x"}))
    assert seq(make({"key": "x"})) != seq(make({"key": "y"}))


def test_rules_are_immutable():
    rule = PolicySpec.parse("query:0.5").factory().rule
    with pytest.raises(AttributeError):
        rule.k = 0.1


def test_oracle_needs_simulator_facts():
    assert PolicySpec.parse("oracle").simulator_only
    with pytest.raises(InputError, match="oracle"):
        router_factory("oracle")().decide(0.5, 10, 0)


@pytest.mark.parametrize("bad", ["", "thr", "thr:x", "thr:2", "thr:nan", "pomdp:-1",
                                 "pomdp:inf", "agg:/no/such.json", "random:-0.1", "nope:1",
                                 "weak:1", 3])
def test_bad_specs_are_input_errors(bad):
    with pytest.raises(InputError):
        PolicySpec.parse(bad)


def test_horizon_is_the_model_max_steps(default_model):
    make = router_factory("pomdp-filter:0.3", default_model)
    assert make().max_steps == default_model.max_steps
    assert router_factory("thr:0.5", max_steps=60)().max_steps == 60
    r = router_factory("thr:0.5")()
    for t in range(30):
        r.decide(0.9, 5, t)
    with pytest.raises(InputError, match="horizon"):
        r.decide(0.9, 5, 30)


def test_factories_share_heavy_parts(default_model):
    make = router_factory("pomdp-filter:0.3", default_model)
    r1, r2 = make(), make()
    assert r1 is not r2 and r1.rule is r2.rule and r1.state is None
    assert list(itertools.islice((r1.decide(0.4, 30, 0).action,), 1))
