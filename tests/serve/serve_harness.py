"""Test helpers: the real trimpomdp server on its own thread and event loop, plus stub upstreams."""
from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Any

from stub_upstream import StubUpstream

from trimpomdp.serve.app import TrimServer
from trimpomdp.serve.config import ServeConfig


class ServerThread:
    """``with ServerThread(cfg) as srv: srv.url`` — starts, then drains and stops on exit."""

    def __init__(self, config: ServeConfig) -> None:
        self.server = TrimServer(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> ServerThread:  # noqa: PYI034
        self.thread.start()
        try:
            self.call(self.server.start())
        except BaseException:
            self._halt()
            raise
        return self

    def stop(self) -> None:
        self.call(self.server.stop())

    def _halt(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.server.runner is not None and not self.server.draining:
                self.stop()
        finally:
            self._halt()


@contextmanager
def stubs(n_steps: int = 3, delay: float = 0.0):
    """Weak, strong and PRM stub servers (real HTTP on loopback)."""
    with StubUpstream("weak", n_steps=n_steps, delay=delay) as w, \
            StubUpstream("strong", n_steps=n_steps, delay=delay) as s, \
            StubUpstream("prm", delay=delay) as p:
        yield {"weak": w, "strong": s, "prm": p}


def config(up: dict[str, StubUpstream], **kw: Any) -> ServeConfig:
    base: dict[str, Any] = {"weak_url": up["weak"].url, "strong_url": up["strong"].url,
                            "prm_url": up["prm"].url, "policy": "thr:0.5", "port": 0,
                            "retries": 0, "timeout": 10.0, "shutdown_timeout": 10.0}
    base.update(kw)
    return ServeConfig(**base)
