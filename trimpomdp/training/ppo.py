"""PPO training of the learned routers in the simulator: TRIM-Agg (MLP) and TRIM-Seq (GRU).

Objective (one policy per λ): reward R·[final answer correct] − λ·(strong tokens), with R the
model's reward (100), so λ means the same as in the POMDP; internally rewards are divided by R.

* **TRIM-Agg** — actor-critic MLPs (hidden 64, tanh) on the release's five features: current
  score, min of previous scores, product of previous scores, tokens / 300, step / horizon
  (:mod:`trimpomdp.routing.features`, shared with deployment). The previous
  scores follow :class:`~trimpomdp.routing.router.StepRouter`'s bookkeeping, so the features at
  training and deployment are identical. With ``observe_regenerated`` (default, the release's
  loop: the PRM re-scores the history with the strong step in it) a regenerated step's own
  simulated PRM score enters the min / product, as ``StepRouter.observe_regenerated`` books it
  in ``trimpomdp run`` (``score_strong_steps``, default on) and in
  ``simulate(..., observe_regenerated=True)``; without it the strong step counts as 1.0.
* **TRIM-Seq** — a one-layer GRU (hidden 32) over the per-step inputs (score, tokens / 300,
  step / horizon, previous action); the actor and critic heads see its state concatenated with the
  current step's five Agg features (so Seq can do at least what Agg does).

PPO: Adam 3e-4, clip 0.2, GAE λ 0.95, γ = 1 (release values), entropy bonus 0.01. The actor
starts at P(regenerate) = ``init_regenerate`` and, during training, each action keeps a
probability of at least ``explore_floor`` (the floored distribution is the one PPO optimises):
without the floor PPO pushed P(regenerate) to ~0 before it had learnt how it depends on the score
and collapsed to weak-only for λ ≥ 0.3 in our runs. Training needs
torch (imported inside the functions); the trained policies run in plain numpy, so routing never
loads torch. Deployment is greedy (argmax of the actor's logits).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from trimpomdp.errors import InputError
from trimpomdp.routing.features import agg_features, book_step, keep_score, seq_input
from trimpomdp.routing.learned import AggRule, LearnedWeights, SeqRule
from trimpomdp.sim.calibrated import load_simulator
from trimpomdp.sim.engine import rollout

_TORCH_HINT = "PPO training needs torch: pip install 'trimpomdp[train]' (or torch==2.13.0)"


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError:
        raise InputError(_TORCH_HINT, field="torch") from None
    return torch


@dataclass(frozen=True, slots=True, kw_only=True)
class PPOConfig:
    """PPO hyper-parameters (defaults: the release's where it gives them)."""

    lam: float
    reward: float = 100.0
    hidden: int = 64
    gru_hidden: int = 32
    lr: float = 3e-4
    clip: float = 0.2
    gae_lambda: float = 0.95
    gamma: float = 1.0
    iterations: int = 150
    episodes_per_iter: int = 512
    epochs: int = 4
    minibatch_episodes: int = 128
    entropy_coef: float = 0.01
    init_regenerate: float = 0.3
    explore_floor: float = 0.03
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    seed: int = 0
    #: book each strong step's PRM score into min / product (the release's loop); off: 1.0
    observe_regenerated: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.lam, bool) or not (isinstance(self.lam, (int, float))
                                              and math.isfinite(self.lam) and self.lam >= 0):
            raise InputError(f"The 'lam' parameter must be a float in the range [0, inf). Got "
                             f"{self.lam!r} instead.", field="lam")
        for name in ("hidden", "gru_hidden", "iterations", "episodes_per_iter", "epochs",
                     "minibatch_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"The '{name}' parameter must be an integer >= 1. Got {v!r} "
                                 "instead.", field=name)
        if not isinstance(self.observe_regenerated, bool):
            raise InputError(f"The 'observe_regenerated' parameter must be a bool. Got "
                             f"{self.observe_regenerated!r} instead.", field="observe_regenerated")
        if not (0 < self.lr < 1 and 0 < self.clip < 1 and 0 <= self.gae_lambda <= 1
                and 0 < self.gamma <= 1 and self.reward > 0 and 0 < self.init_regenerate < 1
                and 0 <= self.explore_floor < 0.5):
            raise InputError("lr, clip, init_regenerate in (0, 1), gae_lambda in [0, 1], gamma in "
                             "(0, 1] and reward > 0 are required.", field="lr")


def _build_net(kind: str, cfg: PPOConfig) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            H = cfg.hidden
            if kind == "agg":
                self.gru = None
                d = 5
            else:
                self.gru = nn.GRU(4, cfg.gru_hidden, batch_first=True)
                d = cfg.gru_hidden + 5
            self.actor = nn.Sequential(nn.Linear(d, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(),
                                       nn.Linear(H, 2))
            self.critic = nn.Sequential(nn.Linear(d, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(),
                                        nn.Linear(H, 1))
            with torch.no_grad():  # start at P(regenerate) = init_regenerate
                self.actor[-1].bias.copy_(torch.tensor(  # type: ignore[operator]
                    [0.0, math.log(cfg.init_regenerate / (1.0 - cfg.init_regenerate))]))

        def forward(self, x: Any, h: Any = None) -> tuple[Any, Any, Any]:
            """x: (..., 5) Agg features, or (B, T, 9) = Seq inputs (4) + Agg features (5)."""
            if self.gru is not None:
                y, h = self.gru(x[..., :4], h)
                x = torch.cat([y, x[..., 4:]], dim=-1)
            return self.actor(x), self.critic(x).squeeze(-1), h

    return Net()


def _export(net: Any, kind: str, cfg: PPOConfig, info: dict[str, Any], horizon: int = 30
            ) -> LearnedWeights:
    def lin(seq: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy()
                 .copy()) for m in seq if hasattr(m, "weight")]

    gru = {}
    if kind == "seq":
        gru = {"w_ih": net.gru.weight_ih_l0, "w_hh": net.gru.weight_hh_l0,
               "b_ih": net.gru.bias_ih_l0, "b_hh": net.gru.bias_hh_l0}
        gru = {k: v.detach().double().numpy().copy() for k, v in gru.items()}
    return LearnedWeights(kind=kind, lam=cfg.lam, actor=tuple(lin(net.actor)),
                          critic=tuple(lin(net.critic)), gru=gru, config=asdict(cfg), info=info,
                          horizon=int(horizon))


def _load_weights(net: Any, kind: str, w: LearnedWeights) -> None:
    """Copy a checkpoint's arrays into ``net`` (the inverse of :func:`_export`): a warm start."""
    import torch

    if w.kind != kind:
        raise InputError(f"the warm-start checkpoint must be a '{kind}' policy. Got a "
                         f"'{w.kind}' one instead.", field="init")
    for seq, layers, part in ((net.actor, w.actor, "actor"), (net.critic, w.critic, "critic")):
        mods = [m for m in seq if hasattr(m, "weight")]
        if len(mods) != len(layers) or any(tuple(m.weight.shape) != W.shape
                                           for m, (W, _) in zip(mods, layers)):
            raise InputError(f"the warm-start checkpoint's {part} layers do not fit this "
                             "network (hidden sizes differ).", field="init")
        with torch.no_grad():
            for m, (W, b) in zip(mods, layers):
                m.weight.copy_(torch.tensor(np.array(W), dtype=m.weight.dtype))
                m.bias.copy_(torch.tensor(np.array(b), dtype=m.bias.dtype))
    if kind == "seq":
        names = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0",
                 "b_hh": "bias_hh_l0"}
        with torch.no_grad():
            for k, attr in names.items():
                t = getattr(net.gru, attr)
                a = np.array(w.gru.get(k))
                if a.shape != tuple(t.shape):
                    raise InputError("the warm-start checkpoint's GRU does not fit this network.",
                                     field="init")
                t.copy_(torch.tensor(a, dtype=t.dtype))


def _collect(net: Any, kind: str, sc: Any, rng: Any, fl: float, observe_regenerated: bool = True
             ) -> dict[str, Any]:
    """One batch of episodes on scenario ``sc`` with the stochastic (floored) policy."""
    import torch

    T_MAX = sc.horizon

    n = sc.n
    F = 5 if kind == "agg" else 9
    X = np.zeros((n, T_MAX, F), np.float32)
    A = np.zeros((n, T_MAX), np.int64)
    LP = np.zeros((n, T_MAX), np.float32)
    V = np.zeros((n, T_MAX), np.float32)
    mask = np.zeros((n, T_MAX), bool)
    min_prev, prod_prev = np.ones(n), np.ones(n)
    prev_a = np.zeros(n)
    h: Any = torch.zeros(1, n, net.gru.hidden_size) if kind == "seq" else None
    for_cost = np.zeros((n, T_MAX))

    def act(t: int, idx: np.ndarray, score: np.ndarray, tok: np.ndarray, final: np.ndarray
            ) -> np.ndarray:
        nonlocal h
        x = agg_features(score, min_prev[idx], prod_prev[idx], tok, np.full(idx.size, t), T_MAX)
        if kind == "seq":
            x = np.concatenate([seq_input(score, tok, np.full(idx.size, t), prev_a[idx], T_MAX), x],
                               axis=-1)
        X[idx, t] = x
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32)
            if kind == "seq":
                logits, v, hn = net(xt[:, None, :], h[:, idx])
                h[:, idx] = hn
                logits, v = logits[:, 0], v[:, 0]
            else:
                logits, v, _ = net(xt)
            p = (fl + (1 - 2 * fl) * torch.softmax(logits, -1)).numpy()
        a = (rng.random(idx.size) < p[:, 1]).astype(np.int64)
        A[idx, t] = a
        LP[idx, t] = np.log(np.where(a == 1, p[:, 1], p[:, 0]) + 1e-12)
        V[idx, t] = v.numpy()
        mask[idx, t] = True
        for_cost[idx, t] = np.where(a == 1, sc.n_s[idx, t], 0)
        min_prev[idx], prod_prev[idx] = book_step(min_prev[idx], prod_prev[idx], score, a)
        prev_a[idx] = a
        return a.astype(bool)

    def observe(t: int, idx: np.ndarray, strong_score: np.ndarray) -> None:
        min_prev[idx], prod_prev[idx] = keep_score(min_prev[idx], prod_prev[idx], strong_score)

    res = rollout(sc, act, kind, observe=observe if observe_regenerated else None)
    return {"X": X, "A": A, "LP": LP, "V": V, "mask": mask, "cost": for_cost,
            "correct": res.correct, "result": res}


def _gae(batch: dict[str, Any], cfg: PPOConfig) -> tuple[np.ndarray, np.ndarray]:
    mask, V = batch["mask"], batch["V"]
    r = -(cfg.lam / cfg.reward) * batch["cost"]
    last = mask.sum(axis=1) - 1
    r[np.arange(len(last)), last] += batch["correct"].astype(float)
    adv = np.zeros_like(r)
    nxt_adv = np.zeros(len(last))
    nxt_v = np.zeros(len(last))
    for t in range(mask.shape[1] - 1, -1, -1):
        m = mask[:, t]
        delta = r[:, t] + cfg.gamma * nxt_v - V[:, t]
        a = delta + cfg.gamma * cfg.gae_lambda * nxt_adv
        adv[:, t] = np.where(m, a, 0.0)
        nxt_adv = np.where(m, a, 0.0)
        nxt_v = np.where(m, V[:, t], 0.0)
    return adv, adv + V


def train_ppo(kind: str, lam: float, *, simulator: Any = None, config: PPOConfig | None = None,
              progress: bool = False, init: AggRule | SeqRule | LearnedWeights | None = None
              ) -> AggRule | SeqRule:
    """Train TRIM-Agg (``kind="agg"``) or TRIM-Seq (``"seq"``) for ``lam`` in the simulator.

    Each iteration draws fresh problems (seed = config.seed·10⁶ + iteration). Returns the greedy
    numpy policy; ``policy.w.info`` holds the learning curve. ``init`` warm-starts the networks
    from a trained policy of the same kind (e.g. the next smaller λ's): from scratch, PPO
    collapses to weak-only at high λ, where only few, well-aimed regenerations pay; the
    checkpoint's ``info.init_from`` records the start.
    """
    if kind not in ("agg", "seq"):
        raise InputError(f"kind must be 'agg' or 'seq'. Got {kind!r} instead.", field="kind")
    torch = _torch()
    cfg = config if config is not None else PPOConfig(lam=lam)
    if config is not None and config.lam != lam:
        cfg = PPOConfig(**{**asdict(config), "lam": lam})
    sim = simulator if simulator is not None else load_simulator()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = _build_net(kind, cfg)
    init_w = getattr(init, "w", init)
    if init_w is not None:
        if not isinstance(init_w, LearnedWeights):
            raise InputError(f"init must be a trained AggRule / SeqRule or LearnedWeights. Got "
                             f"{type(init).__name__} instead.", field="init")
        _load_weights(net, kind, init_w)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    curve = []
    t0 = time.time()
    for it in tqdm(range(cfg.iterations), disable=not progress, desc=f"PPO {kind} λ={lam:g}"):
        sc = sim.scenario(cfg.episodes_per_iter, cfg.seed * 1_000_000 + it)
        batch = _collect(net, kind, sc, rng, cfg.explore_floor, cfg.observe_regenerated)
        adv, ret = _gae(batch, cfg)
        res = batch["result"]
        curve.append({"iteration": it, "accuracy": res.accuracy,
                      "strong_tokens": res.mean_strong_tokens,
                      "return": float(np.mean(res.correct) - cfg.lam / cfg.reward
                                      * res.mean_strong_tokens)})
        m = batch["mask"]
        a_all = adv[m]
        adv_n = (adv - a_all.mean()) / (a_all.std() + 1e-8)
        T = lambda x, dt=torch.float32: torch.as_tensor(x, dtype=dt)
        X, A, LP = T(batch["X"]), T(batch["A"], torch.int64), T(batch["LP"])
        ADV, RET, M = T(adv_n), T(ret), T(m, torch.bool)
        n = X.shape[0]
        for _ in range(cfg.epochs):
            perm = rng.permutation(n)
            for s in range(0, n, cfg.minibatch_episodes):
                j = torch.as_tensor(perm[s:s + cfg.minibatch_episodes])
                logits, v, _ = net(X[j])
                mm = M[j]
                logp_all = torch.log_softmax(logits, -1)
                fl = cfg.explore_floor
                lp = torch.log(fl + (1 - 2 * fl) * logp_all.exp()).gather(
                    -1, A[j][..., None]).squeeze(-1)
                ratio = torch.exp(lp - LP[j])
                adv_j = ADV[j]
                pg = -torch.min(ratio * adv_j, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip)
                                * adv_j)
                ent = -(logp_all.exp() * logp_all).sum(-1)
                vl = (v - RET[j]) ** 2
                loss = ((pg + cfg.value_coef * vl - cfg.entropy_coef * ent) * mm).sum() / \
                    mm.sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                opt.step()
    info: dict[str, Any] = {"seconds": time.time() - t0, "curve": curve,
                            "episodes": cfg.iterations * cfg.episodes_per_iter}
    if init_w is not None:
        info["init_from"] = {"kind": init_w.kind, "lam": float(init_w.lam)}
    w = _export(net, kind, cfg, info, horizon=sc.horizon)
    return AggRule(w) if kind == "agg" else SeqRule(w)


def train_agg(lam: float, **kwargs: Any) -> AggRule:
    """Train TRIM-Agg for ``lam`` (see :func:`train_ppo`)."""
    return train_ppo("agg", lam, **kwargs)  # type: ignore[return-value]


def train_seq(lam: float, **kwargs: Any) -> SeqRule:
    """Train TRIM-Seq for ``lam`` (see :func:`train_ppo`)."""
    return train_ppo("seq", lam, **kwargs)  # type: ignore[return-value]


__all__ = ["PPOConfig", "train_agg", "train_ppo", "train_seq"]
