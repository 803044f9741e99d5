"""Per-request routing budgets → router factories, solved once per λ and cached.

``trim.lambda`` solves the TRIM POMDP exactly at that λ (``FiniteHorizonSolver``, about a second);
``trim.strong_token_share`` first finds the λ whose simulated strong-token share meets it
(:func:`trimpomdp.tuning.lambda_for_budget`, seconds to tens of seconds), cached per share. Solves run
in one worker thread so the event loop keeps serving; concurrent requests for the same λ share one
solve.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from trimpomdp.model import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing.pomdp import pomdp_factory
from trimpomdp.routing.spec import PolicySpec
from trimpomdp.serve.validation import Budget
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import lambda_for_budget


@dataclass(frozen=True, slots=True)
class RouterChoice:
    """A factory of fresh per-request routers plus what the response reports about it."""

    factory: Callable[[], Any]
    policy: str
    lam: float | None = None
    strong_token_share: float | None = None


class BudgetRouters:
    """The server's default router and, on demand, POMDP routers per λ or strong-token share.

    ``belief`` of per-request POMDP routers follows the default spec: the release's single-
    observation rule for ``pomdp:...``, the Bayes filter otherwise.
    """

    def __init__(self, spec: str, model_path: str | None = None, *, cache_size: int = 32,
                 sim_problems: int = 2000) -> None:
        self.spec = spec
        self.model_path = model_path
        self.cache_size = cache_size
        self.sim_problems = sim_problems
        self.belief = "release" if spec.strip().lower().startswith("pomdp:") else "filter"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trim-solve")
        self._model: Any = None
        self._default: RouterChoice | None = None
        self._by_lam: OrderedDict[float, asyncio.Future[RouterChoice]] = OrderedDict()
        self._by_share: OrderedDict[float, asyncio.Future[float]] = OrderedDict()
        #: solves done (for tests and /metrics-style introspection)
        self.n_solves = 0
        self.n_share_searches = 0

    def _load_model(self) -> Any:
        if self._model is None:
            self._model = load_model(self.model_path) if self.model_path else load_model()
        return self._model

    def _build_default(self) -> RouterChoice:
        spec = PolicySpec.parse(self.spec)
        model = self._load_model() if spec.uses_model or self.model_path else None
        return RouterChoice(spec.factory(model), str(spec))

    async def start(self) -> RouterChoice:
        """Build the default router (solving a POMDP spec up front)."""
        loop = asyncio.get_running_loop()
        self._default = await loop.run_in_executor(self._executor, self._build_default)
        return self._default

    def _solve(self, lam: float) -> RouterChoice:
        policy = FiniteHorizonSolver().solve(TrimPOMDP(model=self._load_model(), lam=lam))
        self.n_solves += 1
        name = ("pomdp" if self.belief == "release" else "pomdp-filter") + f":{lam:g}"
        return RouterChoice(pomdp_factory(policy, belief=self.belief), name, lam=lam)

    def _lambda_for_share(self, share: float) -> float:
        self.n_share_searches += 1
        return float(lambda_for_budget(self._load_model(), share, belief=self.belief,
                                       n=self.sim_problems))

    async def _cached(self, table: OrderedDict[float, asyncio.Future[Any]], key: float,
                      make: Callable[[], Awaitable[Any]]) -> Any:
        fut = table.get(key)
        if fut is None:
            fut = asyncio.ensure_future(make())
            table[key] = fut
            while len(table) > self.cache_size:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        try:
            return await asyncio.shield(fut)
        except Exception:
            if table.get(key) is fut:  # do not cache failures
                del table[key]
            raise

    async def choose(self, budget: Budget | None) -> RouterChoice:
        """The router for a request's budget (the server default when there is none)."""
        if budget is None:
            return self._default if self._default is not None else await self.start()
        loop = asyncio.get_running_loop()
        share = budget.strong_token_share
        if share is not None:
            lam = await self._cached(self._by_share, share, lambda: loop.run_in_executor(
                self._executor, self._lambda_for_share, share))
        else:
            lam = float(budget.lam)  # type: ignore[arg-type]
        choice = await self._cached(self._by_lam, lam, lambda: loop.run_in_executor(
            self._executor, self._solve, lam))
        if share is not None:
            choice = RouterChoice(choice.factory, choice.policy, lam=lam, strong_token_share=share)
        return choice

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
