"""A Tether server inside this process, for ``tether chat`` / ``complete`` / ``models`` run
without ``--url``.

It is the real server (the same app and engine as ``tether serve``) on a free loopback port,
run by uvicorn on a background thread, so the client code talks HTTP to it exactly as to a
remote server and tokens stream as they are generated. (httpx's ASGITransport would have been
simpler, but it hands back a response only once the app has finished: no streaming.)
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import TYPE_CHECKING

from tether.client.api import ClientError
from tether.config import LOOPBACK, ServerConfig

if TYPE_CHECKING:
    import uvicorn

# Loading the default model takes about a second; a large GGUF on a slow disk much longer.
STARTUP_TIMEOUT_S = 300.0


class LocalServer:
    """``with LocalServer(config) as url:`` serves ``config``'s model at ``url`` until the
    block ends. ``config.host`` and ``config.port`` are ignored: it binds a free loopback port,
    so nothing outside this machine can reach it."""

    def __init__(self, config: ServerConfig) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((LOOPBACK, 0))
        port = self._socket.getsockname()[1]
        self.config = dataclasses.replace(config, host=LOOPBACK, port=port)
        self.url = f"http://{LOOPBACK}:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        import uvicorn

        from tether.server import build_app

        app = build_app(self.config)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="error", access_log=False, timeout_graceful_shutdown=2)
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name="tether-local", daemon=True
        )
        self._thread.start()
        self._wait_started(server, self._thread)
        return self.url

    def __exit__(self, *exc: object) -> None:
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=30)
        self._socket.close()

    @staticmethod
    def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise ClientError("the in-process server failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise ClientError(f"the in-process server did not start in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.02)
