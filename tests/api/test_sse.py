"""Stream framing on the wire: what ``curl -N`` shows and what the SDKs' decoders accept."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import CHAT, COMPLETIONS, Exchange, chat_body, drive, sse_payloads
from tests.api.fake_engine import FakeEngine, Script
from tether.api.app import create_app
from tether.api.sse import dumps, encode
from tether.config import ServerConfig


def test_encode_is_one_data_line_and_a_blank_line() -> None:
    event = encode({"text": "two\nlines", "n": 1})
    assert event == b'data: {"text":"two\\nlines","n":1}\n\n'


def test_unicode_line_separators_are_escaped_for_splitlines_decoders() -> None:
    # httpx's line decoder uses str.splitlines(), which breaks on U+2028 / U+2029 / U+0085.
    text = dumps({"text": "a\u2028b\u2029c\x85d é"})
    assert text.splitlines() == [text]
    assert json.loads(text)["text"] == "a\u2028b\u2029c\x85d é"
    assert "é" in text  # other non-ASCII stays raw (ensure_ascii=False)


async def test_stream_headers_and_framing(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-length" not in response.headers
    assert "content-encoding" not in response.headers
    assert response.headers["x-request-id"]
    body = response.content.decode()
    events = body.split("\n\n")
    assert events[-1] == ""  # nothing after the final blank line
    assert events[-2] == "data: [DONE]"
    for event in events[:-1]:
        assert "\n" not in event, "each event is exactly one line"
        assert event.startswith("data: ")
        assert not event.startswith(("id:", "event:", "retry:"))
    for event in events[:-2]:
        json.loads(event.removeprefix("data: "))


async def test_stream_decided_by_body_not_accept_header(client: httpx.AsyncClient) -> None:
    # Both Stainless SDKs send Accept: application/json when streaming.
    response = await client.post(
        CHAT, json=chat_body(stream=True), headers={"accept": "application/json"}
    )
    assert response.headers["content-type"] == "text/event-stream"


async def test_headers_sent_before_the_first_token(engine: FakeEngine, app: FastAPI) -> None:
    engine.default = Script(["late"], first_delay_s=0.5)
    exchange = await drive(app, CHAT, chat_body(stream=True))
    first_body_time = exchange.body_times[0][0]
    assert exchange.status == 200
    assert exchange.start_time < 0.25
    assert first_body_time >= 0.5


async def test_keepalive_comments_while_the_engine_is_silent(engine: FakeEngine) -> None:
    engine.default = Script(["late"], first_delay_s=0.5)
    app = create_app(engine, ServerConfig(keepalive_s=0.05), chat=engine)
    exchange = await drive(app, CHAT, chat_body(stream=True))
    parts = [part for _, part in exchange.body_times]
    before_first_token = parts[: next(i for i, p in enumerate(parts) if p.startswith(b"data:"))]
    assert len(before_first_token) >= 3
    assert set(before_first_token) == {b": keep-alive\n\n"}
    assert sse_payloads(exchange.body)[-1] == "[DONE]"


async def test_no_keepalive_while_tokens_flow(engine: FakeEngine) -> None:
    engine.default = Script(["a", "b", "c", "d"], delay_s=0.02)
    app = create_app(engine, ServerConfig(keepalive_s=0.5), chat=engine)
    exchange = await drive(app, CHAT, chat_body(stream=True))
    assert b"keep-alive" not in exchange.body


def _saw_data(exchange: Exchange) -> bool:
    return any(part.startswith(b"data: {") for _, part in exchange.body_times)


async def test_client_disconnect_aborts_the_engine_request(
    engine: FakeEngine, app: FastAPI
) -> None:
    engine.default = Script(["x"] * 50, delay_s=0.02)
    exchange = await drive(app, CHAT, chat_body(stream=True), hang_up_when=_saw_data)
    [request] = engine.requests
    assert engine.aborted == [request.request_id]
    assert engine.streams[0].closed
    assert b"[DONE]" not in exchange.body


async def test_disconnect_while_queued_aborts(engine: FakeEngine, app: FastAPI) -> None:
    engine.default = Script(["never"], first_delay_s=10)
    await drive(
        app,
        COMPLETIONS,
        {"model": engine.model_id, "prompt": "p", "stream": True},
        hang_up_after_s=0.1,
    )
    assert engine.aborted == [engine.requests[0].request_id]


async def test_error_after_200_is_an_error_event_then_done(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(["ok", "more"], fail_after=1)
    response = await client.post(CHAT, json=chat_body(stream=True))
    assert response.status_code == 200
    payloads = sse_payloads(response.content)
    assert payloads[-1] == "[DONE]"
    first, error = json.loads(payloads[0]), json.loads(payloads[-2])
    assert first["choices"][0]["delta"]["content"] == "ok"
    assert set(error) == {"error"}
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["code"] == "internal_error"
    assert "fake engine failure" not in response.text  # no internals leak


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, "/inference"])
async def test_every_endpoint_ends_with_done(client: httpx.AsyncClient, path: str) -> None:
    body = (
        chat_body(stream=True)
        if path == CHAT
        else {"model": "google/gemma-3-270m", "prompt": "p", "stream": True, "stream_tokens": True}
    )
    response = await client.post(path, json=body)
    assert response.content.endswith(b"data: [DONE]\n\n")
    assert response.content.count(b"[DONE]") == 1
