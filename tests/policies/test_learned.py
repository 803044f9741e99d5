import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.types import StepContext
from trimpomdp.routing.features import agg_features, seq_input
from trimpomdp.routing.learned import AggRule, SeqRule, load_learned_rule
from trimpomdp.routing.learned import mlp as _mlp
from trimpomdp.training.ppo import PPOConfig, _build_net, _export, train_ppo

torch = pytest.importorskip("torch")


def test_numpy_agg_matches_torch():
    net = _build_net("agg", PPOConfig(lam=0.1))
    w = _export(net, "agg", PPOConfig(lam=0.1), {})
    x = np.random.default_rng(0).random((7, 5))
    with torch.no_grad():
        ref = net.actor(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(_mlp(x, w.actor), ref, atol=1e-5)


def test_numpy_gru_matches_torch():
    cfg = PPOConfig(lam=0.1)
    net = _build_net("seq", cfg)
    w = _export(net, "seq", cfg, {})
    pol = SeqRule(w)
    rng = np.random.default_rng(1)
    steps = [(float(rng.random()), int(rng.integers(5, 90))) for _ in range(6)]
    hist, ours = [], []
    state = pol.new_state()
    for t, (s, n) in enumerate(steps):
        ctx = StepContext(step=t, tokens=n, score=s, min_prev=1.0, prod_prev=1.0, final=False,
                          history=tuple(hist))
        a, q, _ = pol.route(ctx, None, state)
        ours.append(q)
        hist.append((s, n, int(a)))
    x = torch.tensor(np.array([[np.concatenate([seq_input(s, n, t, hist[t - 1][2] if t else 0),
                                                agg_features(s, 1.0, 1.0, n, t)])
                                for t, (s, n) in enumerate(steps)]]), dtype=torch.float32)
    with torch.no_grad():
        logits, _, _ = net(x)
    np.testing.assert_allclose(np.array(ours), logits[0].numpy(), atol=1e-5)


def test_short_training_learns_to_save_at_high_lambda(tmp_path):
    torch.set_num_threads(1)
    cfg = PPOConfig(lam=20.0, iterations=6, episodes_per_iter=96, seed=3)
    pol = train_ppo("agg", 20.0, config=cfg)
    curve = pol.w.info["curve"]
    assert len(curve) == 6 and pol.w.info["episodes"] == 576
    assert curve[-1]["strong_tokens"] < curve[0]["strong_tokens"]
    from trimpomdp.sim import load_simulator, simulate

    greedy = simulate(StepRouter(pol, record=False), load_simulator().scenario(200, 5))
    assert np.mean(greedy.strong_calls) < 0.1 * np.mean(greedy.steps)  # initial policy: ~0.5
    pol.save(tmp_path / "a.json")
    back = load_learned_rule(tmp_path / "a.json", expect="agg")
    assert isinstance(back, AggRule) and back.lam == 20.0
    r1, r2 = StepRouter(pol), StepRouter(back)
    for t, s in enumerate([0.9, 0.1, 0.5]):
        assert r1.decide(s, 40, t).q == pytest.approx(r2.decide(s, 40, t).q)
    with pytest.raises(InputError):
        load_learned_rule(tmp_path / "a.json", expect="seq")


def test_seq_trains_and_routes():
    torch.set_num_threads(1)
    pol = train_ppo("seq", 0.2, config=PPOConfig(lam=0.2, iterations=2, episodes_per_iter=64))
    r = StepRouter(pol)
    for t in range(3):
        r.decide(0.5, 30, t)
    r.reset()
    r.decide(0.5, 30, 0)  # hidden state was reset with the router


def test_config_validation():
    with pytest.raises(InputError):
        PPOConfig(lam=-1)
    with pytest.raises(InputError):
        PPOConfig(lam=0.1, hidden=0)
    with pytest.raises(InputError):
        PPOConfig(lam=0.1, explore_floor=0.6)
    with pytest.raises(InputError):
        train_ppo("transformer", 0.1)
    assert agg_features(0.5, 0.4, 0.2, 150, 15).tolist() == [0.5, 0.4, 0.2, 0.5, 0.5]
    assert agg_features(0.5, 0.4, 0.2, 150, 30, horizon=60).tolist() == [0.5, 0.4, 0.2, 0.5, 0.5]


@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_warm_start_loads_the_checkpoint_exactly(kind):
    """_load_weights is the inverse of _export: a warm-started net exports the same arrays, and
    training from it starts from the checkpoint (recorded in info.init_from)."""
    from trimpomdp.training.ppo import _load_weights

    cfg = PPOConfig(lam=0.1, seed=3)
    src = _export(_build_net(kind, cfg), kind, cfg, {})
    torch.manual_seed(99)
    net = _build_net(kind, cfg)  # other random weights
    _load_weights(net, kind, src)
    back = _export(net, kind, cfg, {})
    for (W0, b0), (W1, b1) in zip(src.actor + src.critic, back.actor + back.critic, strict=True):
        np.testing.assert_allclose(W1, W0, atol=1e-7)
        np.testing.assert_allclose(b1, b0, atol=1e-7)
    for k in src.gru:
        np.testing.assert_allclose(back.gru[k], src.gru[k], atol=1e-7)
    pol = train_ppo(kind, 0.2, config=PPOConfig(lam=0.2, iterations=1, episodes_per_iter=32),
                    init=src)
    assert pol.w.info["init_from"] == {"kind": kind, "lam": 0.1}
    other = "seq" if kind == "agg" else "agg"
    with pytest.raises(InputError, match="warm-start checkpoint must be"):
        train_ppo(other, 0.2, config=PPOConfig(lam=0.2, iterations=1, episodes_per_iter=32),
                  init=src)
    with pytest.raises(InputError, match="hidden sizes differ|does not fit"):
        train_ppo(kind, 0.2, config=PPOConfig(lam=0.2, iterations=1, episodes_per_iter=32,
                                              hidden=16, gru_hidden=8), init=src)
