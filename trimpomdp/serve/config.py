"""Settings of ``trimpomdp serve``: upstream servers, default policy, limits (a frozen value)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from trimpomdp.errors import InputError

#: per-request λ accepted by the ``trim.lambda`` field (R = 100: λ = 100 already makes a one-token
#: strong step cost the whole task reward)
LAMBDA_MAX = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Everything the server needs; checked at construction so that the CLI fails before binding."""

    weak_url: str
    strong_url: str | None = None
    prm_url: str | None = None
    policy: str = "thr:0.5"
    model: str | None = None
    served_model_name: str = "trimpomdp"
    host: str = "127.0.0.1"
    port: int = 8000
    #: requests in flight per upstream server (the rest wait in the client's queue)
    upstream_concurrency: int = 16
    timeout: float = 300.0
    retries: int = 2
    shutdown_timeout: float = 60.0
    max_body_bytes: int = 1 << 20
    max_steps: int = 30
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

    def __post_init__(self) -> None:
        for name in ("weak_url", "strong_url", "prm_url"):
            url = getattr(self, name)
            if url is not None and not url.startswith(("http://", "https://")):
                raise InputError(f"The '{name}' parameter must be an http(s) URL. Got {url!r} "
                                 "instead.", field=name.removesuffix("_url"))
        spec = self.policy.strip().lower()
        if spec != "weak" and not self.strong_url:
            raise InputError(f"policy {self.policy!r} may regenerate steps: pass --strong URL.",
                             field="strong")
        if spec not in ("weak", "strong") and not self.prm_url:
            raise InputError(f"policy {self.policy!r} routes on PRM scores: pass --prm URL.",
                             field="prm")
        if not (0 <= self.port <= 65535):
            raise InputError(f"The 'port' parameter must be an int in [0, 65535]. Got "
                             f"{self.port!r} instead.", field="port")
        ints = {"upstream_concurrency": 1, "max_body_bytes": 1024, "max_step_tokens": 1,
                "policy_cache": 1, "budget_sim_problems": 10, "retries": 0}
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InputError(f"The '{name}' parameter must be an int >= {lo}. Got {v!r} "
                                 "instead.", field=name)
        if not (1 <= self.max_steps <= 30):
            raise InputError(f"The 'max_steps' parameter must be an int in [1, 30]. Got "
                             f"{self.max_steps!r} instead.", field="max_steps")
        for name in ("timeout", "shutdown_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"The '{name}' parameter must be a float in the range (0, inf). "
                                 f"Got {v!r} instead.", field=name)
        if not self.served_model_name.strip():
            raise InputError("The 'served_model_name' parameter must be a non-empty string. Got "
                             f"{self.served_model_name!r} instead.", field="served_model_name")
