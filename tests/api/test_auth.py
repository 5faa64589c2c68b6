"""Bearer keys: 401 without or with a wrong key, on every route but ``/health``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.conftest import CHAT, chat_body
from tests.api.fake_engine import FakeEngine
from tether.api.app import create_app
from tether.api.auth import ApiKeyAuth, bearer_token
from tether.config import ServerConfig

KEYS = ("key-one", "key-two")


@pytest.fixture
async def locked(engine: FakeEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, ServerConfig(api_keys=KEYS), chat=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"authorization": "key-one"}, auth("")])
async def test_missing_or_wrong_key_is_401(
    locked: httpx.AsyncClient, engine: FakeEngine, headers: dict[str, str]
) -> None:
    response = await locked.post(CHAT, json=chat_body(), headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["id"] == response.headers["x-request-id"]
    assert body["error"]["code"] == "invalid_api_key"
    assert engine.requests == []


@pytest.mark.parametrize("key", KEYS)
async def test_any_configured_key_works(locked: httpx.AsyncClient, key: str) -> None:
    assert (await locked.post(CHAT, json=chat_body(), headers=auth(key))).status_code == 200


async def test_auth_checked_before_the_body_is_parsed(locked: httpx.AsyncClient) -> None:
    response = await locked.post(CHAT, content=b"{not json")
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/metrics"])
async def test_get_routes_need_the_key(locked: httpx.AsyncClient, path: str) -> None:
    assert (await locked.get(path)).status_code == 401
    assert (await locked.get(path, headers=auth("key-one"))).status_code == 200


async def test_legacy_inference_needs_the_key(locked: httpx.AsyncClient) -> None:
    body = {"model": "google/gemma-3-270m", "prompt": "p"}
    assert (await locked.post("/inference", json=body)).status_code == 401


async def test_health_is_open(locked: httpx.AsyncClient) -> None:
    assert (await locked.get("/health")).status_code == 200


async def test_no_keys_means_open(client: httpx.AsyncClient) -> None:
    assert (await client.post(CHAT, json=chat_body())).status_code == 200


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None


def test_accepts_non_ascii_tokens_without_error() -> None:
    assert not ApiKeyAuth(KEYS).accepts("ключ")
