"""Graceful shutdown: on SIGTERM or SIGINT, drain, then end what is left in-band (issue 9).

    signal ─► Shutdown.begin()        new requests: 503 server_shutdown + retry-after
                                      /health: 503 {"status": "draining"} (load balancers drain)
        │     wait until no request is in flight, at most ``drain_timeout_s``
        ▼
    pool.end_all(EngineShutdownError)   every stream still running on any model, and every
        │                               request still waiting (for a slot or for its model to
        │                               load), ends with the error event, then [DONE];
        │                               a non-streaming one gets the 503
        ▼     wait (briefly) for those responses to be written
    on_drained()                      the HTTP server stops; the lifespan frees the models

Kubernetes, systemd and rolling restarts all send SIGTERM; a client must never see a cut
connection (wire-contract.md "Liveness"). The in-flight count is kept by ``DrainGuard``,
around every request but the operational routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.api.errors import ShuttingDown, error_response
from tether.api.middleware import request_id
from tether.engine.errors import EngineError, EngineShutdownError

log = logging.getLogger(__name__)

# Routes a draining server still answers normally: probes and scrapes must see the drain.
OPS_PATHS = frozenset({"/health", "/metrics"})
# After the drain timeout, how long ended streams get to write their error event and [DONE].
FLUSH_S = 5.0
_POLL_S = 0.05


class EndsAll(Protocol):
    """What the drain ends when its time is up (``tether.pool.pool.ModelPool``)."""

    def end_all(self, error: EngineError) -> None: ...


class Shutdown:
    """The drain state of one server."""

    def __init__(self, engine: EndsAll, drain_timeout_s: float) -> None:
        self._engine = engine
        self.drain_timeout_s = drain_timeout_s
        self.draining = False
        self.in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def begin(self, on_drained: Callable[[], None]) -> None:
        """Start draining, and call ``on_drained`` when done; called again, cut the drain
        short (a second Ctrl-C). On the event loop."""
        if self._task is not None:
            self._hurry.set()
            return
        self.draining = True
        log.info(
            "shutting down: draining %d request(s) for up to %.0f s",
            self.in_flight,
            self.drain_timeout_s,
        )
        self._task = asyncio.get_running_loop().create_task(self._drain(on_drained))

    async def _drain(self, on_drained: Callable[[], None]) -> None:
        try:
            if not await self._wait_idle(self.drain_timeout_s):
                log.warning(
                    "drain timeout: ending %d request(s) with server_shutdown", self.in_flight
                )
                self._engine.end_all(EngineShutdownError("The server is shutting down."))
                self._hurry.clear()
                await self._wait_idle(FLUSH_S)
        finally:
            on_drained()

    async def _wait_idle(self, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight and loop.time() < deadline and not self._hurry.is_set():
            await asyncio.sleep(_POLL_S)
        return not self.in_flight


class DrainGuard:
    """Pure ASGI: counts requests in flight, and refuses new ones while draining."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self._app = app
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPS_PATHS:
            await self._app(scope, receive, send)
            return
        shutdown = self._shutdown
        if shutdown.draining:
            refusal = ShuttingDown("The server is shutting down; retry on another replica.")
            await error_response(refusal, request_id(HTTPConnection(scope)))(scope, receive, send)
            return
        shutdown.in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            shutdown.in_flight -= 1
