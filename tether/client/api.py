"""A small client for any OpenAI-compatible server: Tether, llama.cpp's servers, vLLM.

It reads only what those servers agree on: ``choices[0].text`` (completions) or
``choices[0].delta.content`` (chat), ``usage.completion_tokens`` when a chunk carries it, and
``{"error": {"message": ...}}`` bodies. Exceptions::

    ClientError           what the CLI prints before exiting with status 1
    ├── Unreachable       no HTTP answer at all (refused, timed out)
    ├── ServerError       an HTTP error status, or an error event inside a stream
    └── NotHealthy        (``health``) a server process that exited or never became healthy
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx

DONE = "[DONE]"
# A generous read timeout: a long prompt on a busy CPU server may take minutes to prefill,
# and Tether sends keep-alive comments every 15 s meanwhile (wire-contract.md "Stream framing").
TIMEOUT = httpx.Timeout(10.0, read=300.0)


class ClientError(Exception):
    """Anything the user should see as one line on stderr."""


class Unreachable(ClientError):
    """The server did not answer: nothing listens there, or it timed out."""


class ServerError(ClientError):
    """The server answered with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


def base_url(url: str) -> str:
    """``url`` without a trailing ``/`` or ``/v1``: users paste either form of a base URL
    (``OPENAI_BASE_URL`` ends in ``/v1``, ``TOGETHER_BASE_URL`` usually does not)."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` of each event. Every server we talk to sends one ``data:`` line per event,
    so a line is an event; comments (``: keep-alive``) and other fields are skipped. Per the
    WHATWG SSE spec, one space after the colon is part of the framing, not of the value."""
    for line in lines:
        if line.startswith("data:"):
            value = line[5:]
            yield value[1:] if value.startswith(" ") else value


def error_message(body: str) -> str:
    """The human part of an error body: ``error.message`` (OpenAI/Together), FastAPI's
    ``detail``, or the raw text."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip() or "(empty response)"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "detail" in payload:
            return str(payload["detail"])
    return body.strip()


def model_cards(payload: Any) -> list[dict[str, Any]]:
    """The model objects of a ``/v1/models`` answer: Together's bare array or OpenAI's
    ``{"object": "list", "data": [...]}`` (vLLM, llama.cpp)."""
    cards = payload.get("data", []) if isinstance(payload, dict) else payload
    return [card for card in cards if isinstance(card, dict) and "id" in card]


def choice_text(chunk: dict[str, Any]) -> str:
    """The new text of a chunk's first choice, chat (``delta.content``) or completion (``text``)."""
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    content = (choice.get("delta") or {}).get("content")
    text = content if content is not None else choice.get("text")
    return text or ""


@dataclass
class TokenMeter:
    """When the text of one streamed answer arrived, and how many tokens it was.

    Only chunks that carry text count as arrivals (as in vLLM's serving benchmark), so a
    role-only first chunk does not pass for the first token. The token count is the server's
    ``usage.completion_tokens`` when it reports one, else the number of text chunks.
    """

    started: float = field(default_factory=time.perf_counter)
    arrivals: list[float] = field(default_factory=list)
    usage_tokens: int | None = None
    finished: float | None = None

    def observe(self, chunk: dict[str, Any]) -> str:
        """Record ``chunk``; return its text."""
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]
        text = choice_text(chunk)
        if text:
            self.arrivals.append(time.perf_counter())
        return text

    def finish(self) -> None:
        self.finished = time.perf_counter()

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else len(self.arrivals)

    @property
    def ttft_s(self) -> float | None:
        return self.arrivals[0] - self.started if self.arrivals else None

    @property
    def duration_s(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def gaps_s(self) -> list[float]:
        """Inter-token latencies: the time between consecutive text chunks."""
        return [b - a for a, b in pairwise(self.arrivals)]


class Client:
    """Blocking client for the CLI. ``url`` may end in ``/v1`` or not."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = base_url(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=TIMEOUT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def models(self) -> list[dict[str, Any]]:
        """The model cards the server lists."""
        with self._reaching():
            response = self._http.get("/models")
        _check(response)
        return model_cards(response.json())

    def default_model(self) -> str:
        """The first model the server lists: what ``--model`` means when not given."""
        cards = self.models()
        if not cards:
            raise ServerError(200, f"{self.url}/v1/models lists no model; pass --model")
        return str(cards[0]["id"])

    def stream_data(self, path: str, body: dict[str, Any]) -> Iterator[str]:
        """The raw ``data`` payloads of a streamed POST, up to (not including) ``[DONE]``.

        The response is closed when the iterator is, so breaking out of the loop or a Ctrl-C
        hangs up, and the server aborts the generation.
        """
        with self._reaching(), self._http.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                response.read()
                _check(response)
            for data in sse_data(response.iter_lines()):
                if data == DONE:
                    return
                yield data

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The decoded chunks of a streamed POST; an error event raises ``ServerError``."""
        for data in self.stream_data(path, body):
            chunk: dict[str, Any] = json.loads(data)
            if "error" in chunk:
                raise ServerError(200, error_message(data))
            yield chunk

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            reason = str(exc) or type(exc).__name__
            raise Unreachable(f"cannot reach {self.url}: {reason}") from exc


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise ServerError(response.status_code, error_message(response.text))
