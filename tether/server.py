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
from typing import Any

import uvicorn
from fastapi import FastAPI

from tether.api.shutdown import Shutdown
from tether.config import LOOPBACK, ServerConfig
from tether.pool import memory
from tether.pool.factory import EngineFactory
from tether.pool.pool import Limits, ModelPool
from tether.pool.spec import model_table

log = logging.getLogger("tether")


def build_pool(config: ServerConfig) -> ModelPool:
    """The models ``config`` names, none loaded yet (``ModelPool.start`` loads the pinned
    ones: with one model served the pre-pool way, that one)."""
    table = model_table(config)
    limits = Limits(config.max_loaded_models, int(config.models_memory_gb * memory.GIB))
    return ModelPool(table, EngineFactory(table), limits)


def build_app(config: ServerConfig) -> FastAPI:
    """The app, with the models' lifecycle as its lifespan and the access log around it."""
    from tether.api.access_log import AccessLogMiddleware
    from tether.api.app import create_app

    pool = build_pool(config)
    app = create_app(pool, config)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            await pool.start()
            _log_models(pool, config)
            yield
        finally:
            await app.state.responses.shutdown(timeout=5.0)
            await pool.stop()
            if app.state.store is not None:
                await app.state.store.close()

    app.router.lifespan_context = lifespan
    app.add_middleware(AccessLogMiddleware)  # added last: outermost, sees the final status
    return app


def _log_models(pool: ModelPool, config: ServerConfig) -> None:
    where = f"http://{config.host}:{config.port}, auth {'on' if config.auth_enabled else 'off'}"
    if not pool.table.single:
        default = pool.table.default
        log.info(
            "%d models, %s%s", len(pool.entries), where, f", default {default}" if default else ""
        )
    for name, entry in pool.entries.items():
        spec, loaded = entry.spec, entry.loaded
        source = f"{spec.path or 'embedded'}, {spec.config.engine}"
        if loaded is None:
            ttl = f", unloaded after {spec.ttl_s:g} s idle" if spec.ttl_s else ""
            state = "pinned, failed to load" if entry.pinned else "loads on demand"
            log.info("model %s (%s): %s%s", name, source, state, ttl)
            continue
        size = f"context {loaded.engine.context_length} x {spec.config.max_seqs} sequences"
        log.info(
            "model %s (%s), %s%s", name, source, size, f", {where}" if pool.table.single else ""
        )
        markers = loaded.chat.reasoning_markers
        log.info(
            "chat format: tool calls %s, reasoning %s",
            loaded.chat.tool_parser,
            markers.name if markers is not None else "none",
        )
        log.info("sampling defaults: %s", json.dumps(loaded.sampling_defaults().as_dict()))


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
