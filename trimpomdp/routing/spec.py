"""Policy specs: one parsed value per spec string, whose factory gives a fresh router per problem.

Specs: ``thr:K``, ``pomdp:POLICY_FILE`` (the release's runtime rule: single-observation belief +
closeness gate 0.4), ``pomdp-filter:POLICY_FILE`` (Bayes filter across steps), ``agg:CKPT``,
``seq:CKPT``, ``weak``, ``strong``, ``random:P``, ``explore:P`` (random regenerations for data
collection, recorded as exploration), ``query:K``, ``oracle`` (simulator only). For the two
POMDP specs a number instead of a file (``pomdp-filter:0.3``) solves the model at that λ.

>>> spec = PolicySpec.parse("thr:0.3")
>>> make = spec.factory()
>>> make().decide(0.1, 20, 0).action.label
'regenerate'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel, load_model
from trimpomdp.policies.trim_policy import TrimPolicy
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing import baselines as bl
from trimpomdp.routing.features import DEFAULT_HORIZON
from trimpomdp.routing.learned import load_learned_rule
from trimpomdp.routing.pomdp import pomdp_factory, pomdp_router
from trimpomdp.routing.router import RouterFactory, StepRouter
from trimpomdp.routing.threshold import ThresholdRule
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

SPECS = ("thr:K", "pomdp:POLICY_FILE|λ", "pomdp-filter:POLICY_FILE|λ", "agg:CKPT", "seq:CKPT",
         "weak", "strong", "random:P", "explore:P", "query:K", "oracle")
_BARE = ("weak", "strong", "oracle")
_NUMBER = ("thr", "random", "explore", "query")
_FILE_OR_LAMBDA = ("pomdp", "pomdp-filter")
_FILE = ("agg", "seq")
KINDS = _BARE + _NUMBER + _FILE_OR_LAMBDA + _FILE


def _bad(spec: Any) -> InputError:
    return InputError(f"policy spec must be one of {', '.join(SPECS)}. Got {spec!r} instead.",
                      field="policy")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A parsed policy spec: ``kind`` and its argument (a number, a file, or none)."""

    kind: str
    arg: str = ""

    @classmethod
    def parse(cls, spec: Any) -> PolicySpec:
        """Parse and check a spec string (files are checked to exist); InputError otherwise."""
        if isinstance(spec, PolicySpec):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise _bad(spec)
        kind, _, arg = spec.strip().partition(":")
        kind = kind.strip().lower()
        arg = arg.strip()
        if kind in _BARE and not arg:
            return cls(kind)
        if kind in _NUMBER and arg:
            v = _number(arg, spec)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"policy spec '{spec}' needs a number in [0, 1] after ':'. Got "
                                 f"{arg!r} instead.", field="policy")
            return cls(kind, arg)
        if kind in _FILE_OR_LAMBDA and arg:
            lam = _maybe_number(arg)
            if lam is not None:
                if not (math.isfinite(lam) and lam >= 0):
                    raise InputError(f"policy spec '{spec}' needs a finite λ >= 0 or a policy "
                                     f"file. Got {arg!r} instead.", field="policy")
            elif not Path(arg).is_file():
                raise InputError("policy file not found", path=arg, field="policy")
            return cls(kind, arg)
        if kind in _FILE and arg:
            if not Path(arg).is_file():
                raise InputError("checkpoint file not found", path=arg, field="policy")
            return cls(kind, arg)
        raise _bad(spec)

    def __str__(self) -> str:
        return self.kind + (f":{self.arg}" if self.arg else "")

    @property
    def simulator_only(self) -> bool:
        """True for rules that need facts only a simulator knows (the oracle)."""
        return self.kind == "oracle"

    @property
    def uses_model(self) -> bool:
        """True if the rule is built from a TRIM model (POMDP specs)."""
        return self.kind in _FILE_OR_LAMBDA

    def solved_policy(self, model: TrimModel | None = None) -> TrimPolicy:
        """The solved POMDP policy of a ``pomdp:``/``pomdp-filter:`` spec (λ solved exactly on
        ``model``, default the bundled one; a file loaded)."""
        if not self.uses_model:
            raise InputError(f"policy spec '{self}' has no POMDP policy: use pomdp:FILE|λ or "
                             "pomdp-filter:FILE|λ.", field="policy")
        return _solved(self.arg, model)

    def factory(self, model: TrimModel | None = None, *, record: bool = True,
                density: Any = "continuous", seed: int = 0, max_steps: int | None = None
                ) -> RouterFactory:
        """The router factory: heavy parts (a solved POMDP, weights) are built once, here.

        ``max_steps`` is the horizon of rules without a model (default: the model's, else 30);
        a POMDP rule's horizon is always its model's.
        """
        k, a = self.kind, self.arg
        horizon = int(max_steps if max_steps is not None else
                      (model.max_steps if model is not None else DEFAULT_HORIZON))
        if k in _FILE_OR_LAMBDA:
            policy = _solved(a, model)
            return pomdp_factory(policy, record=record, density=density,
                                 belief="filter" if k == "pomdp-filter" else "release")
        rule: Any
        if k == "weak":
            rule = bl.WeakOnlyRule()
        elif k == "strong":
            rule = bl.StrongOnlyRule()
        elif k == "oracle":
            rule = bl.OracleQueryRule()
        elif k == "thr":
            rule = ThresholdRule(float(a))
        elif k == "query":
            rule = bl.QueryLevelRule(float(a))
        elif k in ("random", "explore"):
            rule = bl.RandomRule(float(a), random_state=seed, explore=k == "explore")
        elif k in _FILE:
            rule = load_learned_rule(a, expect=k)
        else:  # pragma: no cover - parse() admits only the kinds above
            raise _bad(str(self))
        return RouterFactory(rule, max_steps=horizon, record=record)


def _number(arg: str, spec: str) -> float:
    v = _maybe_number(arg)
    if v is None or not math.isfinite(v):
        raise InputError(f"policy spec '{spec}' needs a number after ':'. Got {arg!r} instead.",
                         field="policy")
    return v


def _maybe_number(arg: str) -> float | None:
    try:
        return float(arg)
    except ValueError:
        return None


def _solved(arg: str, model: TrimModel | None) -> TrimPolicy:
    lam = _maybe_number(arg)
    if lam is not None:
        return FiniteHorizonSolver().solve(TrimPOMDP(model=model or load_model(), lam=lam))
    return TrimPolicy.load(arg)


def router_factory(spec: str | PolicySpec, model: TrimModel | None = None, **kwargs: Any
                   ) -> RouterFactory:
    """``PolicySpec.parse(spec).factory(model, **kwargs)``."""
    return PolicySpec.parse(spec).factory(model, **kwargs)


def make_router(spec: str | PolicySpec, model: TrimModel | None = None, *, record: bool = True,
                density: Any = "continuous", seed: int = 0) -> StepRouter:
    """One router (one problem) for ``spec``; use :func:`router_factory` for many problems.

    >>> make_router("thr:0.3").decide(0.1, 20, 0).action.label
    'regenerate'
    """
    return router_factory(spec, model, record=record, density=density, seed=seed)()


__all__ = ["KINDS", "SPECS", "PolicySpec", "make_router", "pomdp_factory", "pomdp_router",
           "router_factory"]
