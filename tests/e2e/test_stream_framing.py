"""The raw bytes of real streams (wire-contract.md "Stream framing" and "Chat chunk").

Read with ``httpx`` below any SSE parser, so that a stray ``id:`` line, a two-line event or a
body left open after ``[DONE]`` shows up here even where one client tolerates it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Server, on_engines
from tests.e2e.wire import KEEPALIVE, chat_body, json_chunks, split_events, stream_bytes

pytestmark = [pytest.mark.e2e, on_engines()]

CHAT = "/v1/chat/completions"
ENDPOINTS = {
    "chat": CHAT,
    "completions": "/v1/completions",
    "inference": "/inference",
}


def _body(endpoint: str, model: str) -> dict[str, Any]:
    if endpoint == "chat":
        return chat_body(model, "Name three colours.", max_tokens=10, stream=True)
    flag = "stream_tokens" if endpoint == "inference" else "stream"
    return {"model": model, "prompt": "Red, green,", "max_tokens": 10, flag: True}


@pytest.fixture(scope="module")
def streams(server: Server) -> dict[str, tuple[dict[str, str], bytes]]:
    """One stream per endpoint: its headers and its whole body, read to EOF."""
    read = {}
    for endpoint, path in ENDPOINTS.items():
        response, raw = stream_bytes(server.url, path, _body(endpoint, server.model))
        assert response.status_code == 200, raw[:300]
        read[endpoint] = (dict(response.headers), raw)
    return read


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_stream_headers(streams: dict[str, tuple[dict[str, str], bytes]], endpoint: str) -> None:
    headers, _ = streams[endpoint]

    assert headers["content-type"].split(";")[0] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-encoding" not in headers


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_event_is_one_data_line_and_done_ends_the_body(
    streams: dict[str, tuple[dict[str, str], bytes]], endpoint: str
) -> None:
    _, raw = streams[endpoint]
    events = [event for event in split_events(raw) if event != KEEPALIVE]

    for event in events:
        assert event.startswith("data: "), event[:80]
        assert "\n" not in event and "\r" not in event, event[:160]
    assert not any(
        line.startswith(("id:", "event:", "retry:")) for line in raw.decode().splitlines()
    )
    assert events[-1] == "data: [DONE]"
    assert raw.endswith(b"data: [DONE]\n\n")
    assert len(json_chunks(raw)) >= 2


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_chunks_share_one_id_and_say_assistant(
    streams: dict[str, tuple[dict[str, str], bytes]], endpoint: str, server: Server
) -> None:
    chunks = json_chunks(streams[endpoint][1])
    expected_object = "chat.completion.chunk" if endpoint == "chat" else "completion.chunk"

    assert len({chunk["id"] for chunk in chunks}) == 1
    assert {chunk["object"] for chunk in chunks} == {expected_object}
    assert {chunk["model"] for chunk in chunks} == {server.model}
    assert all(chunk["choices"][0]["delta"]["role"] == "assistant" for chunk in chunks)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_token_chunks_carry_the_token_object_and_null_logprobs_when_not_asked(
    streams: dict[str, tuple[dict[str, str], bytes]], endpoint: str
) -> None:
    token_chunks = [c for c in json_chunks(streams[endpoint][1]) if c["choices"][0]["text"]]

    assert token_chunks
    for chunk in token_chunks:
        token, choice = chunk["token"], chunk["choices"][0]
        assert isinstance(token["id"], int) and isinstance(token["text"], str)
        assert token["special"] is False
        assert isinstance(token["logprob"], float) and token["logprob"] <= 0
        # Not asked for: null, as Together sends; a float broke LangChain (issue 14).
        assert choice["logprobs"] is None
        assert choice["delta"]["content"] == choice["text"]
        assert choice["delta"]["token_id"] == token["id"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_only_the_last_chunk_finishes_and_carries_usage(
    streams: dict[str, tuple[dict[str, str], bytes]], endpoint: str
) -> None:
    chunks = json_chunks(streams[endpoint][1])
    *body, last = chunks

    assert all(c["choices"][0]["finish_reason"] is None for c in body)
    assert all(c["usage"] is None for c in body)
    assert last["choices"][0]["finish_reason"] in {"stop", "length"}
    assert last["choices"][0]["text"] == ""
    usage = last["usage"]
    assert set(usage) >= {"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= 10


def test_finishing_chat_chunk_has_seed_and_empty_content(
    streams: dict[str, tuple[dict[str, str], bytes]],
) -> None:
    last = json_chunks(streams["chat"][1])[-1]["choices"][0]

    assert isinstance(last["seed"], int)
    assert last["delta"]["content"] == ""
