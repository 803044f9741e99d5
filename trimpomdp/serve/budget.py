"""Per-request routing budgets → router factories, solved once per λ and cached.

``trim.lambda`` solves the TRIM POMDP exactly at that λ (``FiniteHorizonSolver``, about a second);
``trim.strong_token_share`` first finds the λ whose simulated strong-token share meets it
(:func:`trimpomdp.tuning.lambda_for_budget`, seconds to tens of seconds), cached per share. Solves run
in one worker thread so the event loop keeps serving; concurrent requests for the same λ share one
solve.

With ``target_share`` (``--target-share``), requests without a budget are routed closed-loop: a
:class:`~trimpomdp.serve.closed_loop.ShareController` moves λ from the share the finished requests
realised (:meth:`BudgetRouters.feedback`), and the POMDP is re-solved only at quantised λ values
(fast solve, ``tol=1e-3``, LRU-cached, in the worker thread). Requests keep the policy in force
while a new λ is solved, so a λ change costs at most one fast solve and never blocks the loop.
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
from trimpomdp.serve.closed_loop import (
    ControllerSettings,
    ShareController,
    strong_only_tokens,
)
from trimpomdp.serve.models import Budget
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import lambda_for_budget


@dataclass(frozen=True, slots=True)
class RouterChoice:
    """A factory of fresh per-request routers plus what the response reports about it."""

    factory: Callable[[], Any]
    policy: str
    lam: float | None = None
    strong_token_share: float | None = None
    #: routed by the closed-loop share controller (its finished requests feed it back)
    closed_loop: bool = False


class BudgetRouters:
    """The server's default router and, on demand, POMDP routers per λ or strong-token share.

    ``belief`` of per-request POMDP routers follows the default spec: the release's single-
    observation rule for ``pomdp:...``, the Bayes filter otherwise.
    """

    def __init__(self, spec: str, model_path: str | None = None, *, cache_size: int = 32,
                 sim_problems: int = 2000, target_share: float | None = None,
                 target_window: int = 100, initial_lam: float | None = None,
                 max_steps: int | None = None) -> None:
        self.spec = spec
        #: horizon of model-free default rules (the server's step limit; None: the model's)
        self.max_steps = max_steps
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
        #: closed loop (``target_share``): settings, controller, fast policies per quantised λ
        self.closed = None if target_share is None else ControllerSettings(
            target=target_share, window=target_window)
        self.initial_lam = initial_lam
        self.controller: ShareController | None = None
        self._closed_choice: RouterChoice | None = None
        self._fast: OrderedDict[float, RouterChoice] = OrderedDict()
        self._fast_task: asyncio.Future[RouterChoice] | None = None
        #: fast closed-loop solves done, and closed-loop requests fed back
        self.n_fast_solves = 0

    def _load_model(self) -> Any:
        if self._model is None:
            self._model = load_model(self.model_path) if self.model_path else load_model()
        return self._model

    def _build_default(self) -> RouterChoice:
        spec = PolicySpec.parse(self.spec)
        model = self._load_model() if spec.uses_model or self.model_path else None
        return RouterChoice(spec.factory(model, max_steps=self.max_steps), str(spec))

    async def start(self) -> RouterChoice:
        """Build the default router (solving a POMDP spec up front)."""
        loop = asyncio.get_running_loop()
        self._default = await loop.run_in_executor(self._executor, self._build_default)
        if self.closed is not None and self.controller is None:
            lam0 = self.initial_lam
            if lam0 is None:  # the open-loop λ of the target, by simulation
                lam0 = await loop.run_in_executor(self._executor, self._lambda_for_share,
                                                  self.closed.target)
            self.controller = ShareController(self.closed, lam0)
            lam_q = self.controller.lam_quantised
            self._use(await loop.run_in_executor(self._executor, self._solve_fast, lam_q))
        return self._default

    def _solve(self, lam: float) -> RouterChoice:
        policy = FiniteHorizonSolver().solve(TrimPOMDP(model=self._load_model(), lam=lam))
        self.n_solves += 1
        name = ("pomdp" if self.belief == "release" else "pomdp-filter") + f":{lam:g}"
        return RouterChoice(pomdp_factory(policy, belief=self.belief), name, lam=lam)

    def _solve_fast(self, lam: float) -> RouterChoice:
        policy = FiniteHorizonSolver(tol=1e-3).solve(TrimPOMDP(model=self._load_model(), lam=lam))
        self.n_fast_solves += 1
        name = ("pomdp" if self.belief == "release" else "pomdp-filter") + f":{lam:g}"
        return RouterChoice(pomdp_factory(policy, belief=self.belief), name, lam=lam)

    def _use(self, choice: RouterChoice) -> None:
        """Cache a fast policy and route closed-loop requests with it from now on."""
        assert choice.lam is not None and self.closed is not None
        self._fast[choice.lam] = choice
        self._fast.move_to_end(choice.lam)
        while len(self._fast) > self.cache_size:
            self._fast.popitem(last=False)
        self._closed_choice = RouterChoice(
            choice.factory, f"closed-loop:{self.closed.target:g}({choice.policy})", lam=choice.lam,
            strong_token_share=self.closed.target, closed_loop=True)

    @property
    def closed_lambda(self) -> float | None:
        """λ of the policy closed-loop requests are routed with now."""
        return None if self._closed_choice is None else self._closed_choice.lam

    def closed_state(self) -> dict[str, float | None]:
        """The closed loop's state for /metrics (empty without ``target_share``)."""
        c = self.controller
        if self.closed is None:
            return {}
        return {"target_share": self.closed.target,
                "window_share": None if c is None else c.window_share,
                "window_requests": 0 if c is None else len(c.window),
                "lambda": self.closed_lambda,
                "lambda_controller": None if c is None else c.lam,
                "solves_total": self.n_fast_solves, "requests_total": 0 if c is None else c.n}

    def feedback(self, choice: RouterChoice, record: dict[str, Any]) -> None:
        """A finished request's loop record: closed-loop ones move the controller (others are
        ignored). Switches to the new quantised λ at once if it is cached, else starts its fast
        solve (one at a time; the latest wanted λ is solved next)."""
        if not choice.closed_loop or self.controller is None:
            return
        self.controller.update(record.get("strong_tokens", 0), strong_only_tokens(record))
        self._retarget()

    def _retarget(self) -> None:
        assert self.controller is not None
        want = self.controller.lam_quantised
        if want == self.closed_lambda:
            return
        hit = self._fast.get(want)
        if hit is not None:
            self._use(hit)
            return
        if self._fast_task is not None and not self._fast_task.done():
            return  # one solve at a time; its completion re-checks what is wanted
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self._solve_fast, want)
        self._fast_task = fut

        def done(f: asyncio.Future[RouterChoice]) -> None:
            if f.cancelled() or f.exception() is not None:
                return  # keep the policy in force; the next feedback retries
            self._use(f.result())
            self._retarget()

        fut.add_done_callback(done)

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
            if self._default is None:
                await self.start()
            if self._closed_choice is not None:
                return self._closed_choice
            assert self._default is not None
            return self._default
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
