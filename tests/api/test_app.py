"""Routing: base-URL aliases, health, and the request id on every response."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import chat_body, completion_body
from tests.api.fake_engine import FakeEngine


@pytest.mark.parametrize("prefix", ["/v1", "/v1/v1", ""])
async def test_v1_routes_under_every_prefix(client: httpx.AsyncClient, prefix: str) -> None:
    chat = await client.post(f"{prefix}/chat/completions", json=chat_body())
    completion = await client.post(f"{prefix}/completions", json=completion_body())
    assert chat.json()["object"] == "chat.completion"
    assert completion.json()["object"] == "text.completion"


async def test_health_follows_engine_readiness(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.ready = False
    assert (await client.get("/health")).status_code == 503
    engine.ready = True
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_every_response_has_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    responses = [
        await client.get("/health"),
        await client.get("/v1/models"),
        await client.post("/v1/chat/completions", json=chat_body()),
        await client.post("/v1/chat/completions", content=b"nope"),
        await client.get("/missing"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)


async def test_engine_request_id_is_the_response_id(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    response = await client.post("/v1/chat/completions", json=chat_body())
    assert engine.requests[0].request_id == response.json()["id"]


async def test_no_docs_routes(client: httpx.AsyncClient) -> None:
    # /openapi.json is served (issue 12, tests/api/test_openapi.py); no Swagger pages.
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404
