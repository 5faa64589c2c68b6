"""Helpers for reading a real server's bytes the way the contract defines them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import httpx

KEEPALIVE = ": keep-alive"
_RUNNING = re.compile(r"^tether:num_requests_running\{[^}]*\} (\S+)$", re.MULTILINE)


def split_events(body: bytes) -> list[str]:
    """The events of an SSE body, each without its terminating blank line.

    Decodes strictly: a split UTF-8 sequence anywhere in the stream raises here.
    """
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), f"the body must end with a blank line: {text[-80:]!r}"
    return text[:-2].split("\n\n")


def data_events(body: bytes) -> list[str]:
    """The ``data:`` values of a stream, keep-alive comments skipped."""
    events = [event for event in split_events(body) if event != KEEPALIVE]
    for event in events:
        assert event.startswith("data: "), f"not a data event: {event[:80]!r}"
        assert "\n" not in event, f"an event spans lines: {event[:160]!r}"
    return [event.removeprefix("data: ") for event in events]


def json_chunks(body: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a stream that ended with ``data: [DONE]``."""
    payloads = data_events(body)
    assert payloads[-1] == "[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


def stream_bytes(base: str, path: str, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    """POST ``body`` and read the response to EOF; the response carries the headers."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{base}{path}", json=body) as response,
    ):
        raw = b"".join(response.iter_raw())
    return response, raw


def running_requests(base: str, headers: dict[str, str] | None = None) -> float:
    """``tether:num_requests_running`` from ``GET /metrics``."""
    response = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    match = _RUNNING.search(response.text)
    assert match, "tether:num_requests_running missing from /metrics"
    return float(match.group(1))


def chat_body(model: str, content: str = "Hi", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def assemble_tool_call(stream: Iterable[Any]) -> tuple[str, str, str | None]:
    """(name, arguments, finish_reason) of one tool call, as an app assembles it from the
    openai SDK's streamed ``delta.tool_calls``."""
    name, arguments, finish = "", "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            name += (call.function and call.function.name) or ""
            arguments += (call.function and call.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    return name, arguments, finish
