"""Fixtures: a scripted engine, an app over it, an httpx client, and a raw ASGI driver.

httpx's ASGITransport hands back a response only once the app has finished, so tests about
timing (headers before the first token, keep-alives) and about client disconnects drive the
app with ``drive()``, which records every ASGI message with its time and can hang up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.fake_engine import MODEL_ID, FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def config() -> ServerConfig:
    return ServerConfig(keepalive_s=15.0)


@pytest.fixture
def app(engine: FakeEngine, config: ServerConfig) -> FastAPI:
    return create_app(engine, config, chat=engine)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tether") as http:
        yield http


def chat_body(content: str = "Hi", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": content}], **fields}


def completion_body(prompt: str = "Once", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "prompt": prompt, **fields}


def sse_payloads(body: bytes) -> list[str]:
    """The ``data:`` values of a stream, in order (comments skipped)."""
    events = body.decode().split("\n\n")
    assert events[-1] == "", "the body must end with a blank line after the last event"
    return [event.removeprefix("data: ") for event in events[:-1] if not event.startswith(":")]


def sse_json(body: bytes) -> list[dict[str, Any]]:
    """The JSON events of a stream that ended with ``[DONE]``."""
    payloads = sse_payloads(body)
    assert payloads[-1] == "[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


@dataclass
class Exchange:
    """What an ASGI app sent, each message stamped with seconds since the request began."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self._start()["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self._start()["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for _, m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def body_times(self) -> list[tuple[float, bytes]]:
        return [(t, m["body"]) for t, m in self.messages if m["type"] == "http.response.body"]

    @property
    def start_time(self) -> float:
        return next(t for t, m in self.messages if m["type"] == "http.response.start")

    def _start(self) -> dict[str, Any]:
        return next(m for _, m in self.messages if m["type"] == "http.response.start")


async def drive(
    app: FastAPI,
    path: str,
    body: dict[str, Any],
    *,
    hang_up_when: Callable[[Exchange], bool] | None = None,
    hang_up_after_s: float | None = None,
    timeout_s: float = 5.0,
) -> Exchange:
    """POST ``body`` to ``app`` over raw ASGI; hang up on a condition or after a delay."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    raw = json.dumps(body).encode()
    exchange = Exchange()
    gone = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        exchange.messages.append((loop.time() - began, message))
        finished = message["type"] == "http.response.body" and not message.get("more_body")
        if finished or (hang_up_when is not None and hang_up_when(exchange)):
            gone.set()

    if hang_up_after_s is not None:
        loop.call_later(hang_up_after_s, gone.set)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"tether"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("tether", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout_s)
    return exchange
