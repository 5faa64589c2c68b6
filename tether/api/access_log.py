"""Access log: one structured line per HTTP request, written when its response has ended.

    method=POST path=/v1/completions status=200 duration_ms=812.4 request_id=3f9c… client=…

``key=value`` pairs (logfmt), so the line greps by eye and parses by machine; the same fields
ride on the record as ``record.access`` for a JSON formatter. ``duration_ms`` runs to the
last byte, so for a stream it is the whole generation, not the time to headers. The request
id is the ``x-request-id`` the response carries (``RequestIdMiddleware``), which is also the
body's ``id``: a user's bug report leads straight to this line. ``status=0`` means no
response was started (the client left first).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("tether.access")

_REQUEST_ID = b"x-request-id"


def logfmt(fields: dict[str, Any]) -> str:
    """``key=value`` pairs; values with spaces, quotes or ``=`` are JSON-quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class AccessLogMiddleware:
    """Pure ASGI, outermost, so it sees the final status and the request id header, and a
    streamed response is timed to its end (BaseHTTPMiddleware would buffer streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id = "-"

        async def send_and_note(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == _REQUEST_ID:
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": request_id,
                "client": _client(scope),
            }
            logger.info(logfmt(fields), extra={"access": fields})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
