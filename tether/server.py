"""The whole server: ``build_app`` (app + engine lifecycle) and ``serve`` (uvicorn, with a
graceful drain on SIGTERM / SIGINT). ``tether serve`` and the in-process server of
``tether chat`` both build the app here."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI

from tether.api.shutdown import Shutdown
from tether.config import LOOPBACK, ServerConfig
from tether.engine.base import Engine

log = logging.getLogger("tether")


class ServedEngine(Engine, Protocol):
    """An engine with a lifecycle: the server starts it before serving, stops it after."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_engine(config: ServerConfig) -> ServedEngine:
    """The engine ``config`` names (imported only when chosen: vLLM is an optional extra)."""
    if config.engine == "vllm":
        from tether.engines.vllm.engine import VllmEngine

        return VllmEngine(config.engine_config(), config.vllm_options())
    from tether.engines.llamacpp.async_engine import AsyncEngine

    return AsyncEngine(config.engine_config())


def build_app(config: ServerConfig) -> FastAPI:
    """The app, with the engine's lifecycle as its lifespan and the access log around it."""
    from tether.api.access_log import AccessLogMiddleware
    from tether.api.app import create_app

    engine = build_engine(config)
    app = create_app(engine, config)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await engine.start()
        try:
            # A model whose chat template does not compile fails here, not on a request.
            template = config.chat_template_for(engine.chat_template)
            log.info(
                "model %s (%s, %s), context %d x %d sequences, http://%s:%d, auth %s",
                config.model_id,
                config.model_path or "embedded",
                config.engine,
                engine.context_length,
                config.max_seqs,
                config.host,
                config.port,
                "on" if config.auth_enabled else "off",
            )
            markers = template.reasoning_markers
            log.info(
                "chat format: tool calls %s, reasoning %s",
                template.tool_parser,
                markers.name if markers is not None else "none",
            )
            defaults = engine.sampling_defaults.with_values(config.sampling_defaults)
            log.info("sampling defaults: %s", json.dumps(defaults.as_dict()))
            yield
        finally:
            await app.state.responses.shutdown(timeout=5.0)
            await engine.stop()
            if app.state.store is not None:
                await app.state.store.close()

    app.router.lifespan_context = lifespan
    app.add_middleware(AccessLogMiddleware)  # added last: outermost, sees the final status
    return app


class DrainingServer(uvicorn.Server):
    """uvicorn whose first SIGTERM / SIGINT drains (``tether.api.shutdown``) instead of
    stopping at once; a second one cuts the drain short, a third stops without waiting.

    uvicorn re-raises the signals it caught once it has stopped, which would end the process
    with -SIGTERM (or a ``KeyboardInterrupt`` traceback) instead of 0: this server does not
    record them, so a drained shutdown exits 0.
    """

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if not self.started or self._loop is None or self._signals > 2:
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._shutdown.begin, self._drained)

    def _drained(self) -> None:
        self.should_exit = True


def serve(config: ServerConfig) -> None:
    app = build_app(config)
    if not config.auth_enabled:
        where = (
            "loopback only"
            if config.host == LOOPBACK
            else f"{config.host}, OPEN TO ANYONE WHO CAN REACH IT"
        )
        log.warning("no API key (--api-key / TETHER_API_KEYS): serving without auth on %s", where)
    # Our access log replaces uvicorn's: it has the request id and the duration.
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    DrainingServer(uv_config, app.state.shutdown).run()
