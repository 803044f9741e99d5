"""Learned rules at deployment: TRIM-Agg (MLP) and TRIM-Seq (GRU), greedy, numpy only.

The weights are immutable and shared; TRIM-Seq's GRU hidden state is per problem (its rule state).
Features come from :mod:`trimpomdp.routing.features` (the ones PPO trains on); the step feature
is scaled by the horizon the checkpoint was trained for (``horizon``, 30 when not recorded).
Training lives in :mod:`trimpomdp.training.ppo`; loading a checkpoint never imports torch.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trimpomdp._io import check_envelope, envelope, read_json, write_json
from trimpomdp.belief import Belief
from trimpomdp.errors import InputError
from trimpomdp.routing.features import DEFAULT_HORIZON, agg_features, seq_input
from trimpomdp.routing.types import BaseRule, Route, StepContext
from trimpomdp.types import RouteAction

KIND = "learned_policy"
_C, _R = RouteAction.CONTINUE, RouteAction.REGENERATE
Layers = tuple[tuple[np.ndarray, np.ndarray], ...]


def mlp(x: np.ndarray, layers: Layers) -> np.ndarray:
    """tanh MLP forward pass (no activation on the last layer)."""
    for i, (W, b) in enumerate(layers):
        x = x @ W.T + b
        if i < len(layers) - 1:
            x = np.tanh(x)
    return x


def gru_step(x: np.ndarray, h: np.ndarray, g: Mapping[str, np.ndarray]) -> np.ndarray:
    """One PyTorch-convention GRU step (gates r, z, n)."""
    gi = g["w_ih"] @ x + g["b_ih"]
    gh = g["w_hh"] @ h + g["b_hh"]
    H = h.shape[0]
    r = 1.0 / (1.0 + np.exp(-(gi[:H] + gh[:H])))
    z = 1.0 / (1.0 + np.exp(-(gi[H:2 * H] + gh[H:2 * H])))
    n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
    return (1.0 - z) * n + z * h


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class LearnedWeights:
    """A checkpoint's arrays (read-only) and metadata; shared by every problem."""

    kind: str
    lam: float
    actor: Layers
    critic: Layers
    gru: Mapping[str, np.ndarray] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    horizon: int = DEFAULT_HORIZON

    def __post_init__(self) -> None:
        object.__setattr__(self, "actor", tuple((_frozen(W), _frozen(b)) for W, b in self.actor))
        object.__setattr__(self, "critic", tuple((_frozen(W), _frozen(b))
                                                 for W, b in self.critic))
        object.__setattr__(self, "gru", {k: _frozen(v) for k, v in self.gru.items()})
        _check_weights(self)


def _check_weights(w: LearnedWeights, path: str | os.PathLike[str] = "<checkpoint>") -> None:
    """Shapes chain, values are finite, the output has 2 logits; else InputError naming ``path``."""
    if w.kind not in ("agg", "seq"):
        raise InputError(f"checkpoint type must be 'agg' or 'seq'. Got {w.kind!r} instead.",
                         path=path, field="type")
    if not (isinstance(w.lam, float) and math.isfinite(w.lam) and w.lam >= 0):
        raise InputError(f"lam must be a finite number >= 0. Got {w.lam!r} instead.", path=path,
                         field="lam")
    if isinstance(w.horizon, bool) or not isinstance(w.horizon, int) or w.horizon < 1:
        raise InputError(f"horizon must be an integer >= 1. Got {w.horizon!r} instead.",
                         path=path, field="horizon")
    H = 0
    if w.kind == "seq":
        need = ("w_ih", "w_hh", "b_ih", "b_hh")
        if any(k not in w.gru for k in need):
            raise InputError(f"a seq checkpoint needs gru weights {', '.join(need)}.", path=path,
                             field="gru")
        H = w.gru["w_hh"].shape[1] if w.gru["w_hh"].ndim == 2 else -1
        shapes = {"w_ih": (3 * H, 4), "w_hh": (3 * H, H), "b_ih": (3 * H,), "b_hh": (3 * H,)}
        for k, shp in shapes.items():
            if H < 1 or w.gru[k].shape != shp:
                raise InputError(f"gru.{k} must have shape {shp}. Got {w.gru[k].shape} instead.",
                                 path=path, field=f"gru.{k}")
    for part, out in (("actor", 2), ("critic", 1)):
        layers = getattr(w, part)
        if not layers:
            raise InputError(f"{part} must hold at least one layer. Got none instead.",
                             path=path, field=part)
        d = 5 + H
        for i, (W, b) in enumerate(layers):
            if W.ndim != 2 or W.shape[1] != d or b.shape != (W.shape[0],):
                raise InputError(f"{part} layer {i} must map {d} inputs (weights (m, {d}), bias "
                                 f"(m,)). Got {W.shape} and {b.shape} instead.", path=path,
                                 field=f"{part}[{i}]")
            d = W.shape[0]
        if d != out:
            raise InputError(f"{part} must end with {out} output(s). Got {d} instead.", path=path,
                             field=part)
    arrays = [a for W, b in w.actor + w.critic for a in (W, b)] + list(w.gru.values())
    if not all(np.isfinite(a).all() for a in arrays):
        raise InputError("weights must be finite numbers. Got NaN or inf instead.", path=path,
                         field="actor")


class AggRule(BaseRule):
    """TRIM-Agg at deployment: the actor MLP on the five features, greedy (stateless)."""

    uses_belief = False

    def __init__(self, weights: LearnedWeights) -> None:
        self.w = weights
        self.lam = weights.lam
        self.name = f"agg:λ={weights.lam:g}"
        self._freeze()

    def logits(self, ctx: StepContext) -> np.ndarray:
        """Actor logits (continue, regenerate) at ``ctx``."""
        x = agg_features(ctx.score, ctx.min_prev, ctx.prod_prev, ctx.tokens, ctx.step,
                         self.w.horizon)
        return mlp(x, self.w.actor)

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
        lg = self.logits(ctx)
        act = _R if lg[1] > lg[0] else _C
        return act, (float(lg[0]), float(lg[1])), f"agg logits=({lg[0]:.3g}, {lg[1]:.3g})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the checkpoint as versioned JSON (atomically)."""
        save_weights(self.w, path)


@dataclass(slots=True)
class _SeqState:
    h: np.ndarray
    t: int = 0


class SeqRule(BaseRule):
    """TRIM-Seq at deployment: a GRU over the steps so far (state per problem), greedy."""

    uses_belief = False

    def __init__(self, weights: LearnedWeights) -> None:
        self.w = weights
        self.lam = weights.lam
        self.name = f"seq:λ={weights.lam:g}"
        self._hidden = int(weights.gru["w_hh"].shape[1])
        self._freeze()

    def new_state(self, info: Mapping[str, Any] | None = None) -> _SeqState:
        return _SeqState(h=np.zeros(self._hidden))

    def route(self, ctx: StepContext, belief: Belief | None, state: _SeqState) -> Route:
        if ctx.step != state.t:
            raise InputError(f"SeqRule must see every step in order. Got step {ctx.step}, "
                             f"expected {state.t}.", field="step")
        prev = ctx.history[-1][2] if ctx.history else 0
        H = self.w.horizon
        state.h = gru_step(seq_input(ctx.score, ctx.tokens, ctx.step, prev, H), state.h,
                           self.w.gru)
        state.t += 1
        z = np.concatenate([state.h, agg_features(ctx.score, ctx.min_prev, ctx.prod_prev,
                                                  ctx.tokens, ctx.step, H)])
        lg = mlp(z, self.w.actor)
        act = _R if lg[1] > lg[0] else _C
        return act, (float(lg[0]), float(lg[1])), f"seq logits=({lg[0]:.3g}, {lg[1]:.3g})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the checkpoint as versioned JSON (atomically)."""
        save_weights(self.w, path)


def save_weights(w: LearnedWeights, path: str | os.PathLike[str]) -> None:
    """Write a checkpoint as versioned JSON (atomically)."""
    write_json(path, envelope(KIND, {
        "type": w.kind, "lam": w.lam, "horizon": w.horizon, "config": dict(w.config),
        "info": dict(w.info),
        "actor": [[W.tolist(), b.tolist()] for W, b in w.actor],
        "critic": [[W.tolist(), b.tolist()] for W, b in w.critic],
        "gru": {k: v.tolist() for k, v in w.gru.items()}}))


def _layers(doc: Any, part: str, path: str | os.PathLike[str]) -> Layers:
    raw = doc[part]
    if not isinstance(raw, list):
        raise InputError(f"{part} must be a list of [weights, bias] layers. Got "
                         f"{type(raw).__name__} instead.", path=path, field=part)
    out = []
    for i, layer in enumerate(raw):
        if not (isinstance(layer, list) and len(layer) == 2):
            raise InputError("each layer must be [weights, bias].", path=path,
                             field=f"{part}[{i}]")
        try:
            out.append((np.asarray(layer[0], float), np.asarray(layer[1], float)))
        except (TypeError, ValueError):
            raise InputError("layer weights must be rectangular arrays of numbers.", path=path,
                             field=f"{part}[{i}]") from None
    return tuple(out)


def load_learned_rule(path: str | os.PathLike[str], expect: str | None = None
                      ) -> AggRule | SeqRule:
    """Load a TRIM-Agg / TRIM-Seq checkpoint (``expect``: 'agg' or 'seq' to check the type)."""
    doc = check_envelope(read_json(path), KIND, path)
    try:
        kind = doc["type"]
        lam = doc["lam"]
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise InputError(f"lam must be a number. Got {lam!r} instead.", path=path,
                             field="lam")
        horizon = doc.get("horizon", DEFAULT_HORIZON)
        gru_doc = doc.get("gru", {})
        if not isinstance(gru_doc, dict):
            raise InputError("gru must be an object of arrays.", path=path, field="gru")
        try:
            gru = {k: np.asarray(v, float) for k, v in gru_doc.items()}
        except (TypeError, ValueError):
            raise InputError("gru weights must be rectangular arrays of numbers.", path=path,
                             field="gru") from None
        if kind not in ("agg", "seq") or (expect is not None and kind != expect):
            raise InputError(f"checkpoint type must be {expect or 'agg or seq'!r}. Got {kind!r} "
                             "instead.", path=path, field="type")
        w = LearnedWeights(kind=kind, lam=float(lam), actor=_layers(doc, "actor", path),
                           critic=_layers(doc, "critic", path), gru=gru,
                           config=dict(doc.get("config") or {}), info=dict(doc.get("info") or {}),
                           horizon=horizon)
    except KeyError as exc:
        raise InputError("missing required field", path=path, field=str(exc.args[0])) from None
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.reason, path=path, field=exc.field) from None
        raise
    return AggRule(w) if kind == "agg" else SeqRule(w)


__all__ = [
    "KIND",
    "AggRule",
    "LearnedWeights",
    "SeqRule",
    "gru_step",
    "load_learned_rule",
    "mlp",
    "save_weights",
]
