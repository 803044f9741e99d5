"""Live wiring shared by ``trimpomdp run`` and ``trimpomdp serve``: upstream settings, builders,
the policy checks both commands make up front, and guards that name the failing part.

- :class:`UpstreamSettings` — the weak/strong servers, the PRM (a URL or ``"self"``), how prompts
  are rendered, timeouts, retries and in-flight bounds; checked at construction.
- :func:`check_policy` — a spec is refused before any work when it cannot run live (``oracle``
  needs known outcomes: simulator only) or needs an upstream that is not configured.
- :func:`build_upstreams` — the clients (:class:`Upstreams`), each behind a guard.
- :func:`make_router_factory` — a factory of per-problem routers, each behind a guard.

Guards turn anything unexpected into an error that names its source: an upstream's failure or
unusable answer is a :class:`~trimpomdp.errors.BackendError` naming the role and URL (``serve``
answers 502), a routing rule's failure is a :class:`RoutingError` naming the rule (``serve``
answers 500, it is the server's bug, not the upstream's).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trimpomdp.errors import BackendError, InputError, TrimpomdpError
from trimpomdp.generation._http import RetryPolicy
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_incremental import check_step_scores
from trimpomdp.generation.prm_self import SelfScorePRM
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput
from trimpomdp.model import load_model
from trimpomdp.routing.spec import router_factory
from trimpomdp.tasks.apply import ProfileBackend, is_release

API_CHOICES = ("auto", "completions", "chat")
#: policy kinds that only make sense in the simulator (they read the true outcome)
SIMULATOR_ONLY = ("oracle",)


class RoutingError(TrimpomdpError, RuntimeError):
    """A routing rule failed while deciding a step (a bug or a rule used out of its contract)."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


def _url(name: str, url: str | None) -> None:
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise InputError(f"The '{name}' parameter must be an http(s) URL. Got {url!r} instead.",
                         field=name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    """Where the models are and how they are called (one value for ``run`` and ``serve``)."""

    weak_url: str
    strong_url: str | None = None
    #: the PRM: a vLLM ``/pooling`` server URL, or ``"self"`` (the strong model's log-probabilities,
    #: the weak one's without --strong)
    prm: str | None = None
    api: str = "auto"
    weak_tokenizer: str | None = None
    strong_tokenizer: str | None = None
    timeout: float = 300.0
    retries: int = 3
    #: requests in flight per upstream server
    concurrency: int = 8
    #: bearer token sent to the upstream servers (vLLM ``--api-key``)
    api_key: str | None = None

    def __post_init__(self) -> None:
        _url("weak", self.weak_url)
        if self.weak_url is None:
            raise InputError("a weak model server is required: pass --weak URL.", field="weak")
        _url("strong", self.strong_url)
        if self.prm is not None and self.prm != "self":
            _url("prm", self.prm)
        if self.api not in API_CHOICES:
            raise InputError(f"The 'api' parameter must be one of {', '.join(API_CHOICES)}. Got "
                             f"{self.api!r} instead.", field="api")
        for name, lo in (("retries", 0), ("concurrency", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InputError(f"The '{name}' parameter must be an int >= {lo}. Got {v!r} "
                                 "instead.", field=name)
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t)
                                                                           and t > 0):
            raise InputError(f"The 'timeout' parameter must be a float in the range (0, inf). Got "
                             f"{t!r} instead.", field="timeout")


def policy_kind(spec: str) -> str:
    return spec.strip().lower().partition(":")[0]


def check_policy(spec: str, *, strong: bool, prm: bool) -> None:
    """Refuse a spec that cannot run live, before anything is written or started."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"policy must be a non-empty spec such as thr:0.5. Got {spec!r} "
                         "instead.", field="policy")
    kind = policy_kind(spec)
    if kind in SIMULATOR_ONLY:
        raise InputError(f"policy {spec!r} is simulator-only: it routes on the true outcome of "
                         "each problem, which a live run does not know. Use it with `trimpomdp "
                         "simulate`; live, try query:K or thr:K.", field="policy")
    if kind != "weak" and not strong:
        raise InputError(f"policy {spec!r} may regenerate steps: pass --strong URL.",
                         field="strong")
    if kind not in ("weak", "strong") and not prm:
        raise InputError(f"policy {spec!r} routes on PRM scores: pass --prm URL (or 'self').",
                         field="prm")


# ---------------------------------------------------------------------------------- guards
class GuardedBackend:
    """A generation backend whose every failure is a BackendError naming it (role and URL)."""

    def __init__(self, inner: Any, role: str) -> None:
        self.inner = inner
        self.role = role
        self.name = getattr(inner, "name", role)

    @property
    def where(self) -> str:
        url = getattr(self.inner, "base_url", None)
        return f"the {self.role} model" + (f" at {url}" if url else "")

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        try:
            out = await self.inner.generate_step(messages, stop=stop, sampling=sampling,
                                                 logprobs=logprobs)
        except (asyncio.CancelledError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001 - anything else is an unusable answer
            raise BackendError(f"{self.where} sent an unusable answer ({type(exc).__name__}: "
                               f"{exc})") from None
        if not isinstance(out, StepOutput):
            raise BackendError(f"{self.where} returned {type(out).__name__}, not a StepOutput")
        return out

    async def stream_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                          sampling: SamplingParams, on_text: Any) -> StepOutput:
        """:meth:`generate_step` streamed (when the inner backend can), with the same guard."""
        try:
            out = await self.inner.stream_step(messages, stop=stop, sampling=sampling,
                                               on_text=on_text)
        except (asyncio.CancelledError, BackendError):
            raise
        except TrimpomdpError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"{self.where} sent an unusable answer ({type(exc).__name__}: "
                               f"{exc})") from None
        return out

    def __getattr__(self, name: str) -> Any:  # setup, http, render, continuation_logprobs, ...
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedPRM:
    """A PRM scorer whose answers are checked: one finite score in [0, 1] per step.

    A non-numeric, NaN or out-of-range probability, a wrong count or any unexpected exception is
    a BackendError that names the PRM (its URL, or "self-scoring").
    """

    def __init__(self, inner: Any, where: str) -> None:
        self.inner = inner
        self.where = where

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        try:
            scores = await self.inner.score_steps(question, steps)
        except (asyncio.CancelledError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"the PRM {self.where} sent an unusable answer "
                               f"({type(exc).__name__}: {exc})") from None
        return check_step_scores(scores, len(steps), self.where)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedRouter:
    """A per-problem router whose failures are RoutingErrors naming the rule (the spec)."""

    def __init__(self, inner: Any, rule: str) -> None:
        self.inner = inner
        self.rule = rule

    def _fail(self, what: str, exc: Exception) -> RoutingError:
        return RoutingError(f"the routing rule {self.rule!r} failed {what} "
                            f"({type(exc).__name__}: {exc})", rule=self.rule)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.inner.reset(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self._fail("to start a problem", exc) from None

    def decide(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.inner.decide(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            step = kwargs.get("step", args[2] if len(args) > 2 else "?")
            raise self._fail(f"at step {step}", exc) from None

    def __getattr__(self, name: str) -> Any:  # summary, observe_regenerated, ...
        return getattr(self.inner, name)


# ---------------------------------------------------------------------------------- builders
@dataclass(slots=True)
class Upstreams:
    """The guarded clients of one process (shared by every problem / request)."""

    weak: Any
    strong: Any = None
    prm: Any = None

    async def check(self, *, setup: bool = True) -> None:
        """Each server must answer ``/v1/models`` (an actionable BackendError otherwise)."""
        for b in (self.weak, self.strong):
            if b is not None:
                await b.http.check_health()
                if setup:
                    await b.setup()
        inner = getattr(self.prm, "inner", None)
        if inner is not None and hasattr(inner, "http"):
            await inner.http.check_health()

    async def aclose(self) -> None:
        for c in (self.weak, self.strong, self.prm):
            if c is not None:
                try:
                    await c.aclose()
                except Exception:  # noqa: BLE001,S110 - closing must not mask the real error
                    pass


def build_upstreams(s: UpstreamSettings, profile: Any = None) -> Upstreams:
    """Clients for the weak/strong servers and the PRM (needs httpx: ``trimpomdp[live]``).

    ``profile`` (a :class:`~trimpomdp.tasks.TaskProfile`) puts the generators in its format;
    None or the release's ``math`` profile leaves the release's prompts untouched.
    """
    retry = RetryPolicy(retries=s.retries, timeout=s.timeout)
    kw: dict[str, Any] = {"api": s.api, "concurrency": s.concurrency, "retry": retry,
                          "api_key": s.api_key,
                          "chat_template_kwargs": dict(profile.chat_template_kwargs)
                          if profile is not None else None}
    weak: Any = GuardedBackend(OpenAICompletionsBackend(s.weak_url, name="weak",
                                                   tokenizer=s.weak_tokenizer, **kw), "weak")
    strong: Any = None if not s.strong_url else GuardedBackend(OpenAICompletionsBackend(
        s.strong_url, name="strong", tokenizer=s.strong_tokenizer, **kw), "strong")
    prm: Any = None
    if s.prm == "self":
        scorer = strong or weak
        prm = GuardedPRM(SelfScorePRM(scorer.inner), f"(self-scoring by the {scorer.role} model "
                         f"at {scorer.inner.base_url})")
    elif s.prm:
        prm = GuardedPRM(VLLMPoolingPRM(s.prm, concurrency=s.concurrency, retry=retry,
                                        api_key=s.api_key), f"at {s.prm.rstrip('/')}")
    if profile is not None and not is_release(profile):
        weak = ProfileBackend(weak, profile)
        strong = None if strong is None else ProfileBackend(strong, profile)
    return Upstreams(weak, strong, prm)


def load_trim_model(path: str | None) -> Any:
    """The TRIM model of ``--model`` (None: the policy uses its own or the bundled one)."""
    if path is None:
        return None
    return load_model(path)


def takes_info(factory: Callable[..., Any]) -> bool:
    """Whether a router factory accepts the problem's ``info`` (``{"key": ...}``)."""
    if isinstance(factory, GuardedFactory):
        return factory.keyed
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


def new_router(factory: Callable[..., Any], info: dict[str, Any] | None = None) -> Any:
    """One fresh router from ``factory``, given the problem's ``info`` if the factory takes it."""
    return factory(info) if info is not None and takes_info(factory) else factory()


class GuardedFactory:
    """A router factory whose routers are :class:`GuardedRouter` s naming ``rule``."""

    def __init__(self, inner: Callable[..., Any], rule: str) -> None:
        self.inner = inner
        self.rule = rule
        self.keyed = takes_info(inner)

    @property
    def max_steps(self) -> int | None:
        return getattr(self.inner, "max_steps", None)

    def __call__(self, info: dict[str, Any] | None = None) -> GuardedRouter:
        return GuardedRouter(new_router(self.inner, info), self.rule)


def make_router_factory(spec: str, model: Any = None, *, max_steps: int | None = None
                        ) -> GuardedFactory:
    """A factory of fresh guarded per-problem routers for ``spec`` (built, and a POMDP solved,
    once, up front; bad specs raise InputError here). ``max_steps`` is the horizon of rules that
    do not depend on a model (thr, weak, strong, random, query, learned); a POMDP rule's horizon
    is its model's."""
    return GuardedFactory(router_factory(spec, model, max_steps=max_steps), spec.strip())


def resolve_max_steps(requested: int | None, default: int, factory: Callable[..., Any],
                      spec: str) -> int:
    """The step limit: ``requested`` (checked against the policy's horizon), else the task
    profile's ``default`` clipped to that horizon with a warning."""
    if requested is not None:
        check_horizon(factory, requested, spec)
        return requested
    horizon = _horizon(factory)
    if horizon is not None and default > horizon:
        logging.getLogger("trimpomdp").warning(
            "the task profile allows %d steps but policy %r has a %d-step horizon: using %d "
            "(a TRIM model with max_steps >= %d via --model, or an explicit --max-steps, "
            "changes this)", default, spec, horizon, horizon, default)
        return horizon
    return default


def _horizon(factory: Callable[..., Any]) -> int | None:
    horizon = getattr(factory, "max_steps", None)
    if horizon is None:
        try:
            horizon = getattr(factory(), "max_steps", None)
        except TypeError:  # a factory that needs the problem: the loop checks per problem
            return None
    return horizon if isinstance(horizon, int) else None


def check_horizon(factory: Callable[..., Any], max_steps: int, spec: str) -> None:
    """``max_steps`` must fit the horizon of the spec's routers (their model's ``max_steps``),
    checked once up front instead of failing every problem."""
    horizon = _horizon(factory)
    if isinstance(horizon, int) and max_steps > horizon:
        raise InputError(f"must be <= {horizon}, the horizon of policy {spec!r} (its model's "
                         f"max_steps). Got {max_steps} instead.", field="max_steps")


__all__ = [
    "API_CHOICES",
    "SIMULATOR_ONLY",
    "GuardedBackend",
    "GuardedFactory",
    "GuardedPRM",
    "GuardedRouter",
    "RoutingError",
    "UpstreamSettings",
    "Upstreams",
    "build_upstreams",
    "check_horizon",
    "check_policy",
    "load_trim_model",
    "make_router_factory",
    "new_router",
    "policy_kind",
    "resolve_max_steps",
    "takes_info",
]
