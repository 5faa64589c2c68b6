"""``GET /v1/models`` in both shapes, and which model names a request may use."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import CHAT, chat_body
from tests.api.fake_engine import MODEL_ID, FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.engine.sampling_params import SamplingDefaults


@pytest.mark.parametrize("path", ["/v1/models", "/v1/v1/models", "/models"])
async def test_bare_array_for_together_clients(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"user-agent": "Together/1.5.0"})
    [card] = response.json()
    assert card["id"] == MODEL_ID
    assert card["object"] == "model"
    assert card["type"] == "chat"
    assert card["context_length"] == 256
    assert card["organization"] == "google"
    assert card["display_name"] == "gemma-3-270m"
    assert isinstance(card["created"], int)
    assert card["pricing"] == {"hourly": 0, "input": 0, "output": 0, "base": 0, "finetune": 0}
    assert {"link", "license"} <= set(card)


async def test_list_object_for_the_openai_sdk(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models", headers={"user-agent": "OpenAI/Python 1.51.0"})
    body = response.json()
    assert body["object"] == "list"
    assert body["data"][0]["id"] == MODEL_ID


async def test_model_file_stem_is_accepted(engine: FakeEngine) -> None:
    config = ServerConfig(model_path="/models/gemma-3-270m-it-Q4_K_M.gguf")
    app = create_app(engine, config, chat=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post(CHAT, json={**chat_body(), "model": "gemma-3-270m-it-Q4_K_M"})
    assert response.status_code == 200
    assert response.json()["model"] == MODEL_ID


async def test_near_miss_name_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json={**chat_body(), "model": "gemma-3-270m"})
    assert response.json()["error"]["code"] == "model_not_available"


@pytest.mark.parametrize("prefix", ["/v2", "/v1/v2"])
async def test_project_models_are_a_cursor_page(client: httpx.AsyncClient, prefix: str) -> None:
    """``together`` 3.x's ``models.list()`` calls this route, for any project id (issue 14)."""
    response = await client.get(f"{prefix}/projects/any-project/models")
    body = response.json()
    assert response.status_code == 200
    assert body["next_cursor"] is None
    [model] = body["data"]
    assert model["id"] == model["name"] == MODEL_ID
    assert model["projectId"] == "any-project"
    assert model["visibility"] == "VISIBILITY_PRIVATE"
    assert model["weights"]["contextLength"] == "256"


async def test_project_model_by_id_and_an_unknown_one(client: httpx.AsyncClient) -> None:
    known = await client.get(f"/v2/projects/p/models/{MODEL_ID}")
    unknown = await client.get("/v2/projects/p/models/no/such-model")
    assert known.status_code == 200 and known.json()["id"] == MODEL_ID
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


async def test_supported_models_list_the_served_model(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v2/supported-models")).json()
    [model] = body["data"]
    assert model["id"] == MODEL_ID
    assert model["capabilities"] == ["CAPABILITY_CHAT"]
    assert model["createdAt"].endswith("Z")


async def test_model_cards_show_the_sampling_defaults(client: httpx.AsyncClient) -> None:
    card = (await client.get("/v1/models")).json()[0]
    assert card["sampling_defaults"] == SamplingDefaults().as_dict()
