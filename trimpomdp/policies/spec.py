"""Build a :class:`~trimpomdp.controller.StepRouter` from a short policy spec string.

Specs: ``thr:K``, ``pomdp:POLICY_FILE`` (the release's runtime rule: single-observation belief +
closeness gate 0.4), ``pomdp-filter:POLICY_FILE`` (Bayes filter across steps), ``agg:CKPT``,
``seq:CKPT``, ``weak``, ``strong``, ``random:P``, ``query:K``, ``oracle``. For the two POMDP specs
a number instead of a file (``pomdp-filter:0.3``) solves the model at that λ on the spot.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trimpomdp.controller import StepRouter
from trimpomdp.errors import InputError

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel

SPECS = ("thr:K", "pomdp:POLICY_FILE|λ", "pomdp-filter:POLICY_FILE|λ", "agg:CKPT", "seq:CKPT",
         "weak", "strong", "random:P", "query:K", "oracle")


def pomdp_router(policy: Any, *, belief: str = "filter", density: Any = "continuous",
                 gate: float | None = 0.4, record: bool = True) -> StepRouter:
    """Router for a solved TRIM policy; ``belief`` is ``"filter"`` or ``"release"``."""
    from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
    from trimpomdp.policies.pomdp_route import PomdpRoutePolicy

    model = policy.model
    if belief == "filter":
        up: Any = BayesFilterUpdater.from_pomdp(policy.pomdp, density) if hasattr(
            policy, "pomdp") else BayesFilterUpdater.from_model(model, density)
        name = f"pomdp-filter:λ={policy.lam:g}"
    elif belief == "release":
        up = SingleObservationUpdater.from_model(model, density, gate)
        name = f"pomdp:λ={policy.lam:g}"
    else:
        raise InputError(f"belief must be 'filter' or 'release'. Got {belief!r} instead.",
                         field="belief")
    return StepRouter(PomdpRoutePolicy(policy, name=name), up, record=record)


def _float(arg: str, spec: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise InputError(f"policy spec '{spec}' needs a number after ':'. Got {arg!r} instead.",
                         field="policy") from None


def _solved(arg: str, spec: str, model: TrimModel | None) -> Any:
    try:
        lam = float(arg)
    except ValueError:
        lam = None
    if lam is not None:
        from trimpomdp.model import load_model
        from trimpomdp.pomdp.trim import TrimPOMDP
        from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

        return FiniteHorizonSolver().solve(TrimPOMDP(model=model or load_model(), lam=lam))
    from trimpomdp.policies.trim_policy import TrimPolicy

    if not Path(arg).exists():
        raise InputError("policy file not found", path=arg, field="policy")
    return TrimPolicy.load(arg)


def make_router(spec: str, model: TrimModel | None = None, *, record: bool = True,
                density: Any = "continuous", seed: int = 0) -> StepRouter:
    """A ready router for ``spec`` (see the module docstring); bad specs raise InputError.

    >>> make_router("thr:0.3").decide(0.1, 20, 0).action.label
    'regenerate'
    """
    from trimpomdp.policies import baselines as bl
    from trimpomdp.policies.threshold import ThresholdPolicy

    if not isinstance(spec, str) or not spec:
        raise InputError(f"policy spec must be one of {', '.join(SPECS)}. Got {spec!r} instead.",
                         field="policy")
    kind, _, arg = spec.partition(":")
    simple = {"weak": bl.WeakOnlyPolicy, "strong": bl.StrongOnlyPolicy,
              "oracle": bl.OracleQueryPolicy}
    if kind in simple and not arg:
        return StepRouter(simple[kind](), record=record)
    if kind in ("thr", "random", "query") and arg:
        v = _float(arg, spec)
        pol: Any = {"thr": ThresholdPolicy, "query": bl.QueryLevelPolicy}[kind](v) \
            if kind != "random" else bl.RandomPolicy(v, random_state=seed)
        return StepRouter(pol, record=record)
    if kind in ("pomdp", "pomdp-filter") and arg:
        return pomdp_router(_solved(arg, spec, model), record=record, density=density,
                            belief="filter" if kind == "pomdp-filter" else "release")
    if kind in ("agg", "seq") and arg:
        from trimpomdp.policies.learned import load_learned_policy

        return StepRouter(load_learned_policy(arg, expect=kind), record=record)
    raise InputError(f"policy spec must be one of {', '.join(SPECS)}. Got {spec!r} instead.",
                     field="policy")
