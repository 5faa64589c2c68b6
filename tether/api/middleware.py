"""Request ids: one per HTTP request, on every response as ``x-request-id``.

The id is also the response body's ``id`` and the engine's ``request_id``, so a user's bug
report, the server log and the engine's abort all name the same request. It is generated
here, never taken from the client: engine ids must be unique among live requests.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

HEADER = b"x-request-id"
_STATE_KEY = "request_id"
_HEADERS_KEY = "response_headers"


def new_request_id() -> str:
    return secrets.token_hex(12)


def request_id(conn: HTTPConnection) -> str:
    """The id ``RequestIdMiddleware`` gave this request."""
    state = conn.scope.setdefault("state", {})
    if _STATE_KEY not in state:
        state[_STATE_KEY] = new_request_id()
    rid: str = state[_STATE_KEY]
    return rid


def add_response_headers(conn: HTTPConnection, headers: dict[str, str]) -> None:
    """Headers for this request's response, whatever the response turns out to be (a
    stream, a JSON body or an error): ``RequestIdMiddleware`` adds them at its start."""
    if headers:
        conn.scope.setdefault("state", {}).setdefault(_HEADERS_KEY, {}).update(headers)


class RequestIdMiddleware:
    """Pure ASGI (BaseHTTPMiddleware would buffer streams and hide disconnects). It puts
    ``x-request-id`` and any ``add_response_headers`` on every response.

    It is also the last resort: an exception nobody handled becomes the contract's 500 with
    the request id, never a traceback, and is logged here.
    """

    def __init__(self, app: ASGIApp, on_crash: Callable[[str], Response]) -> None:
        self._app = app
        self._on_crash = on_crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})[_STATE_KEY] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = scope["state"].get(_HEADERS_KEY, {})
                headers = [
                    *message.get("headers", ()),
                    (HEADER, rid.encode()),
                    *((name.encode(), value.encode()) for name, value in extra.items()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error in request %s", rid)
            if started:
                raise  # too late for a status; let the server close the connection
            await self._on_crash(rid)(scope, receive, send_with_id)
