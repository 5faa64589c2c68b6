"""``GET /openapi.json`` (issue 12): the served routes with their request bodies, behind the
same key as ``/v1/models``."""

from __future__ import annotations

import httpx

from tests.api.fake_engine import FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig


async def test_the_document_lists_the_routes_and_their_bodies(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/inference", "/v1/models"):
        assert path in paths
    assert "/v1/v1/chat/completions" not in paths and "/chat/completions" not in paths
    body = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    schemas = document["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert "messages" in chat["required"]
    # ``model`` may be left out: the server's default model answers (--default-model).
    assert "model" in chat["properties"] and "model" not in chat["required"]
    assert {"temperature", "logprobs", "response_format", "reasoning"} <= set(chat["properties"])
    assert "ChatMessage" in schemas  # nested models are components too
    assert "/" not in paths and "/playground" not in paths


async def test_the_document_needs_the_key_when_keys_are_set(engine: FakeEngine) -> None:
    app = create_app(engine, ServerConfig(api_keys=("k",)), chat=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/openapi.json")).status_code == 401
        with_key = await client.get("/openapi.json", headers={"Authorization": "Bearer k"})
        assert with_key.status_code == 200
        assert (await client.get("/")).status_code == 200  # the playground page itself is open


async def test_the_playground_page_and_its_assets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (await client.get("/playground")).text == page.text
    for asset, kind in (("playground.js", "javascript"), ("playground.css", "text/css")):
        response = await client.get(f"/playground/assets/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert f"/playground/assets/{asset}" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: everything is local
