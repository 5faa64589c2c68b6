"""Server-sent events: the only module that knows the SSE wire format.

Framing follows wire-contract.md "Stream framing": one ``data: <single-line JSON>`` line per
event, ``: keep-alive`` comments while nothing else is sent, ``data: [DONE]`` and then the end
of the body. Never ``id:``, ``event:`` or ``retry:`` lines on Together's streams: both Python
SDKs crash on them. The Responses API's streams are the exception (wire-contract.md
"Responses API"): each event is ``event: <type>`` then ``data: <json>``, as OpenAI sends
them, and the body ends after the last event with no ``[DONE]``.

``EventStreamResponse`` supervises three tasks, as sse-starlette does: the pump (events →
bytes), the keep-alive pinger and the disconnect listener. When the pump ends or the client
leaves, the others are cancelled and the event iterator is closed, which closes the engine
stream and so aborts the request in the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless told not to.
    (b"x-accel-buffering", b"no"),
]
# Characters that ``str.splitlines()`` breaks on but JSON leaves unescaped with
# ensure_ascii=False. httpx's line decoder uses str.splitlines(), so a raw U+2028 in a token
# would cut the event in two.
_LINE_BREAKERS = ("\x85", "\u2028", "\u2029")

Payload = Mapping[str, Any]


def dumps(payload: Payload) -> str:
    """Compact single-line JSON (the C encoder; this runs once per generated text piece)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        for char in _LINE_BREAKERS:
            if char in text:
                text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def encode(payload: Payload) -> bytes:
    """One event: ``data: <json>`` and the blank line that dispatches it."""
    return b"data: " + dumps(payload).encode() + b"\n\n"


def encode_named(payload: Payload) -> bytes:
    """One typed event: ``event: <payload's type>``, ``data: <json>``, the blank line."""
    name = str(payload["type"]).replace("\n", " ").replace("\r", " ")
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload).encode() + b"\n\n"


class _ClientGone(Exception):
    """``send`` failed: the connection is closed."""


class EventStreamResponse(Response):
    """A 200 ``text/event-stream`` of JSON payloads, ended by ``[DONE]``.

    ``events`` yields payloads; if it raises after the headers were sent, ``on_error`` turns
    the exception into the payload of the contract's error event, and the stream still ends
    with ``[DONE]``. ``named``: typed events without ``[DONE]`` (the Responses API).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[Payload, None],
        *,
        keepalive_s: float,
        on_error: Callable[[Exception], Payload],
        named: bool = False,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code = 200
        self._encode = encode_named if named else encode
        self._done = b"" if named else DONE
        self.background = None
        self.raw_headers = list(HEADERS)
        self._events = events
        self._on_close = on_close
        self._keepalive_s = keepalive_s
        self._on_error = on_error
        self._lock = asyncio.Lock()
        self._last_write = 0.0
        self._ended = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Headers at once, before the first token: a client that sees no byte for 60 s
        # times out, and a timeout before headers is retried (a duplicate generation).
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self._last_write = asyncio.get_running_loop().time()
        pump = asyncio.ensure_future(self._pump(send))
        ping = asyncio.ensure_future(self._ping(send))
        listen = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((pump, listen), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel_all((pump, ping, listen))
            # Closing the generator runs its ``async with stream`` exit: the engine aborts.
            await self._events.aclose()
            if self._on_close is not None:  # a generator closed before it started runs none
                await self._on_close()

    async def _pump(self, send: Send) -> None:
        try:
            await self._send_events(send)
            await self._write(send, self._done, end=True)
        except _ClientGone:
            return

    async def _send_events(self, send: Send) -> None:
        try:
            async for payload in self._events:
                await self._write(send, self._encode(payload))
        except _ClientGone:
            raise
        except Exception as exc:  # the 200 is out: report in-band (wire-contract.md)
            # ``on_error`` logs what deserves it (a bug with its traceback; not a shutdown).
            await self._write(send, self._encode(self._on_error(exc)))

    async def _ping(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle = loop.time() - self._last_write
            if idle >= self._keepalive_s:
                await self._write(send, KEEPALIVE)
                continue
            await asyncio.sleep(self._keepalive_s - idle)

    async def _write(self, send: Send, data: bytes, *, end: bool = False) -> None:
        async with self._lock:
            if self._ended:
                return
            self._ended = end
            try:
                await send({"type": "http.response.body", "body": data, "more_body": not end})
            except OSError as exc:  # uvicorn raises ClientDisconnected (an OSError)
                raise _ClientGone() from exc
            self._last_write = asyncio.get_running_loop().time()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel_all(tasks: tuple[asyncio.Future[None], ...]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
