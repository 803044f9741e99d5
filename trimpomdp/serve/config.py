"""Settings of ``trimpomdp serve``: upstream servers, default policy, limits (a frozen value)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trimpomdp.errors import InputError
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.wiring import UpstreamSettings, check_policy
from trimpomdp.tasks import load_profile

#: per-request λ accepted by the ``trim.lambda`` field (R = 100: λ = 100 already makes a one-token
#: strong step cost the whole task reward)
LAMBDA_MAX = 100.0
#: environment variable read for ``--api-key``
API_KEY_ENV = "TRIMPOMDP_API_KEY"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Everything the server needs; checked at construction so that the CLI fails before binding."""

    weak_url: str
    strong_url: str | None = None
    #: a vLLM /pooling PRM URL, or "self" (scores from the strong model's log-probabilities)
    prm_url: str | None = None
    policy: str = "thr:0.5"
    model: str | None = None
    #: task profile: math (the release's), general, thinking, or a profile .toml file
    task: str = "math"
    served_model_name: str = "trimpomdp"
    host: str = "127.0.0.1"
    port: int = 8000
    #: requests in flight per upstream server (the rest wait in the client's queue)
    upstream_concurrency: int = 16
    timeout: float = 300.0
    retries: int = 2
    shutdown_timeout: float = 60.0
    max_body_bytes: int = 1 << 20
    #: step limit (None: the task profile's, clipped to the policy's horizon)
    max_steps: int | None = None
    max_step_tokens: int = 2048
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    api: str = "auto"
    weak_tokenizer: str | None = None
    strong_tokenizer: str | None = None
    #: policies kept per λ (LRU)
    policy_cache: int = 32
    #: simulated problems per bisection step of ``strong_token_share`` → λ
    budget_sim_problems: int = 2000
    check_upstream: bool = True
    #: clients must send ``Authorization: Bearer <api_key>`` on /v1/* (None: open)
    api_key: str | None = None
    #: origins allowed by CORS ("*" for any; empty: no CORS headers)
    allowed_origins: tuple[str, ...] = ()
    #: seconds between SSE keep-alive comments while a step is drafted
    sse_keepalive: float = 5.0
    #: largest ``n`` (independent answers) per request
    max_n: int = 8
    #: bearer token sent to the upstream servers
    upstream_api_key: str | None = None
    #: closed loop: requests without a budget hold this strong-token share (None: --policy)
    target_share: float | None = None
    #: closed loop: recent requests over which the realised share is measured
    target_window: int = 100

    def __post_init__(self) -> None:
        ints = {"upstream_concurrency": 1, "max_body_bytes": 1024, "max_step_tokens": 1,
                "policy_cache": 1, "budget_sim_problems": 10, "retries": 0, "max_n": 1,
                "target_window": 1}
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InputError(f"The '{name}' parameter must be an int >= {lo}. Got {v!r} "
                                 "instead.", field=name)
        self.upstream_settings()
        check_policy(self.policy, strong=bool(self.strong_url), prm=bool(self.prm_url))
        if isinstance(self.port, bool) or not isinstance(self.port, int) or \
                not (0 <= self.port <= 65535):
            raise InputError(f"The 'port' parameter must be an int in [0, 65535]. Got "
                             f"{self.port!r} instead.", field="port")
        self.profile()
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(
                self.max_steps, int) or self.max_steps < 1):
            raise InputError(f"The 'max_steps' parameter must be an int >= 1 (and within the "
                             f"policy's horizon). Got {self.max_steps!r} instead.",
                             field="max_steps")
        ts = self.target_share
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))
                               or not 0.0 < ts < 1.0):
            raise InputError(f"The 'target_share' parameter must be a float in the range (0, 1). "
                             f"Got {ts!r} instead.", field="target_share")
        if ts is not None and not (self.strong_url and self.prm_url):
            raise InputError("'target_share' routes with TRIM-POMDP: it needs --strong and "
                             "--prm.", field="target_share")
        for name in ("shutdown_timeout", "sse_keepalive"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)
                                           and v > 0):
                raise InputError(f"The '{name}' parameter must be a float in the range (0, inf). "
                                 f"Got {v!r} instead.", field=name)
        if not isinstance(self.served_model_name, str) or not self.served_model_name.strip():
            raise InputError("The 'served_model_name' parameter must be a non-empty string. Got "
                             f"{self.served_model_name!r} instead.", field="served_model_name")
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("The 'api_key' parameter must be a non-empty string when given.",
                             field="api_key")
        for o in self.allowed_origins:
            if o != "*" and not o.startswith(("http://", "https://")):
                raise InputError(f"each allowed origin must be '*' or scheme://host[:port]. Got "
                                 f"{o!r} instead.", field="allowed_origins")
        try:
            SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                           max_tokens=self.max_step_tokens)
        except InputError as exc:
            raise InputError(exc.reason, field="sampling") from None

    def profile(self) -> Any:
        """The task profile (:mod:`trimpomdp.tasks`)."""
        return load_profile(self.task)

    def upstream_settings(self) -> UpstreamSettings:
        """The shared live-wiring value (:mod:`trimpomdp.generation.wiring`)."""
        return UpstreamSettings(
            weak_url=self.weak_url, strong_url=self.strong_url, prm=self.prm_url, api=self.api,
            weak_tokenizer=self.weak_tokenizer, strong_tokenizer=self.strong_tokenizer,
            timeout=self.timeout, retries=self.retries, concurrency=self.upstream_concurrency,
            api_key=self.upstream_api_key)
