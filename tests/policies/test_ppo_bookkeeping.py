"""PPO sees the release's bookkeeping: a strong step's PRM score enters min / product of previous
scores, exactly as ``StepRouter.observe_regenerated`` books it at deployment and in
``simulate(..., observe_regenerated=True)``."""
from typing import Any

import numpy as np
import pytest

from trimpomdp.routing.features import book_step, keep_score
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.types import BaseRule, StepContext
from trimpomdp.sim import load_simulator
from trimpomdp.sim.engine import rollout, simulate
from trimpomdp.types import RouteAction

FIELDS = ("correct", "strong_tokens", "weak_kept", "weak_discarded", "strong_calls")


class DropRule(BaseRule):
    """Regenerate when the draft's score is below ``r`` × min of previous scores (uses the min)."""

    name = "drop"

    def __init__(self, r: float) -> None:
        self.r = r
        self._freeze()

    def route(self, ctx: StepContext, belief: Any, state: Any) -> Any:
        regen = ctx.score < self.r * min(1.0, ctx.min_prev)
        return (RouteAction.REGENERATE if regen else RouteAction.CONTINUE), None, "drop"


class ReplayRule(BaseRule):
    """Replays recorded actions ``A[problem, step]`` (problem index from the reset info)."""

    name = "replay"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions
        self._freeze()

    def new_state(self, info: Any = None) -> Any:
        return {"i": None if info is None else int(info["seed"]) % 1_000_003}

    def route(self, ctx: StepContext, belief: Any, state: Any) -> Any:
        a = self.actions[state["i"], ctx.step]
        return (RouteAction.REGENERATE if a else RouteAction.CONTINUE), None, "replay"


@pytest.fixture(scope="module")
def sc():
    return load_simulator().scenario(400, seed=5)


def _vectorised_drop(sc, r: float, observe: bool):
    min_prev = np.ones(sc.n)
    prod_prev = np.ones(sc.n)

    def act(t, idx, score, tok, final):
        a = score < r * np.minimum(1.0, min_prev[idx])
        min_prev[idx], prod_prev[idx] = book_step(min_prev[idx], prod_prev[idx], score, a)
        return a

    def obs(t, idx, s2):
        min_prev[idx], prod_prev[idx] = keep_score(min_prev[idx], prod_prev[idx], s2)

    return rollout(sc, act, "drop", observe=obs if observe else None)


@pytest.mark.parametrize("r", [0.5, 0.8])
def test_vectorised_observe_equals_router_engine(sc, r):
    for observe in (False, True):
        a = simulate(StepRouter(DropRule(r), record=False), sc, observe_regenerated=observe)
        b = _vectorised_drop(sc, r, observe)
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{f} {observe}")
    # and booking the strong scores changes what a min-based rule does (the check can fail)
    a = simulate(StepRouter(DropRule(0.8), record=False), sc, observe_regenerated=True)
    b = simulate(StepRouter(DropRule(0.8), record=False), sc, observe_regenerated=False)
    assert not np.array_equal(a.strong_calls, b.strong_calls)


@pytest.mark.parametrize("observe", [True, False])
def test_ppo_features_equal_deployment_features(sc, observe):
    torch = pytest.importorskip("torch", reason="PPO training needs torch")
    from trimpomdp.training.ppo import PPOConfig, _build_net, _collect

    torch.manual_seed(0)
    net = _build_net("agg", PPOConfig(lam=0.1, init_regenerate=0.4))
    batch = _collect(net, "agg", sc, np.random.default_rng(0), 0.05, observe)
    A, X, mask = batch["A"], batch["X"], batch["mask"]
    assert A[mask].mean() > 0.2  # enough regenerations for the check to bite
    res = simulate(StepRouter(ReplayRule(A), record=True), sc, observe_regenerated=observe,
                   keep_traces=True)
    np.testing.assert_array_equal(res.correct, batch["correct"])
    n_diff = 0
    for i, tr in enumerate(res.traces):
        steps = [e for e in tr if "event" not in e]
        assert len(steps) == mask[i].sum()
        for e in steps:
            t = e["step"]
            assert X[i, t, 0] == pytest.approx(e["score"], abs=1e-6)
            assert X[i, t, 1] == pytest.approx(e["min_prev"], abs=1e-6)
            assert X[i, t, 2] == pytest.approx(e["prod_prev"], abs=1e-6)
            n_diff += e["min_prev"] < 1.0
    assert n_diff > 0



@pytest.mark.parametrize("trained,booked,warns", [(True, True, False), (True, False, True),
                                                  (None, True, True), (None, False, False)])
def test_run_warns_when_a_checkpoint_was_trained_with_other_bookkeeping(tmp_path, caplog,
                                                                        trained, booked, warns):
    pytest.importorskip("torch", reason="building a checkpoint needs torch")
    from trimpomdp.generation.wiring import make_router_factory, warn_learned_bookkeeping
    from trimpomdp.routing.learned import AggRule
    from trimpomdp.training.ppo import PPOConfig, _build_net, _export

    cfg = PPOConfig(lam=0.1)
    w = _export(_build_net("agg", cfg), "agg", cfg, {})
    conf = dict(w.config)
    if trained is None:  # a checkpoint from before the setting existed
        conf.pop("observe_regenerated")
    else:
        conf["observe_regenerated"] = trained
    object.__setattr__(w, "config", conf)
    path = tmp_path / "agg.json"
    AggRule(w).save(path)
    factory = make_router_factory(f"agg:{path}")
    with caplog.at_level("WARNING", logger="trimpomdp"):
        assert warn_learned_bookkeeping(factory, booked, f"agg:{path}") is warns
    assert ("features differ from training" in caplog.text) is warns
    assert warn_learned_bookkeeping(make_router_factory("thr:0.5"), booked, "thr:0.5") is False
