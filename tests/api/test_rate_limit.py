"""Per-key rate limits (issue 9): 429 ``rate_limited`` with ``retry-after``, and the headers
the SDKs read on every generation response."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import CHAT, chat_body, sse_json
from tests.api.fake_engine import FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig

REQUEST_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
TOKEN_HEADERS = ("x-tokenlimit-limit", "x-tokenlimit-remaining")


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tether") as http:
        yield http


@pytest.fixture
async def limited(engine: FakeEngine) -> AsyncIterator[httpx.AsyncClient]:
    """Two requests and 40 tokens per minute per key."""
    app = create_app(engine, ServerConfig(rate_limit_rpm=2, rate_limit_tpm=40), chat=engine)
    async for http in _client(app):
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_the_third_request_in_a_minute_is_429_with_retry_after(
    limited: httpx.AsyncClient,
) -> None:
    first = await limited.post(CHAT, json=chat_body(), headers=bearer("a"))
    second = await limited.post(CHAT, json=chat_body(), headers=bearer("a"))
    third = await limited.post(CHAT, json=chat_body(), headers=bearer("a"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert [r.headers["x-ratelimit-remaining"] for r in (first, second)] == ["1", "0"]
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["code"] == "rate_limited"
    assert "2 requests per minute" in error["message"]
    assert third.json()["id"] == third.headers["x-request-id"]
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-limit"] == "2"
    assert third.headers["x-ratelimit-remaining"] == "0"


async def test_each_key_has_its_own_budget(limited: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await limited.post(CHAT, json=chat_body(), headers=bearer("a"))).status_code == 200
    other = await limited.post(CHAT, json=chat_body(), headers=bearer("b"))
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "1"


async def test_streams_and_errors_carry_the_limit_headers(limited: httpx.AsyncClient) -> None:
    stream = await limited.post(CHAT, json=chat_body(stream=True), headers=bearer("s"))
    invalid = await limited.post(CHAT, json=chat_body(temperature=-1), headers=bearer("s"))

    assert stream.status_code == 200 and sse_json(stream.content)
    assert invalid.status_code == 400
    for response in (stream, invalid):
        for name in (*REQUEST_HEADERS, *TOKEN_HEADERS):
            assert name in response.headers, name
    assert stream.headers["x-tokenlimit-limit"] == "40"


async def test_a_request_is_charged_its_prompt_and_generated_tokens(
    limited: httpx.AsyncClient,
) -> None:
    first = await limited.post(CHAT, json=chat_body(), headers=bearer("t"))
    second = await limited.post(CHAT, json=chat_body(), headers=bearer("t"))

    assert first.status_code == 200
    assert first.headers["x-tokenlimit-remaining"] == "40"  # counted before it ran
    usage = first.json()["usage"]
    spent = usage["prompt_tokens"] + usage["completion_tokens"]
    assert int(second.headers["x-tokenlimit-remaining"]) == max(0, 40 - spent)


async def test_token_limit_refuses_once_spent(engine: FakeEngine) -> None:
    app = create_app(engine, ServerConfig(rate_limit_tpm=10), chat=engine)
    async for http in _client(app):
        spent = await http.post(CHAT, json=chat_body(), headers=bearer("k"))
        refused = await http.post(CHAT, json=chat_body(), headers=bearer("k"))

        assert spent.status_code == 200
        assert refused.status_code == 429
        assert refused.headers["x-tokenlimit-remaining"] == "0"
        assert "10 tokens per minute" in refused.json()["error"]["message"]
        assert "x-ratelimit-limit" not in refused.headers  # no request limit was set


async def test_no_limits_no_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body())
    assert response.status_code == 200
    assert not any(name.startswith(("x-ratelimit", "x-tokenlimit")) for name in response.headers)
