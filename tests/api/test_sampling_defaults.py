"""Sampling fields a request leaves out come from the model, or the server's
``--sampling-defaults`` (issue 12); fields the request sets always win."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import CHAT, COMPLETIONS, chat_body, completion_body
from tests.api.fake_engine import FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.engine.sampling_params import SamplingDefaults

MODEL_DEFAULTS = SamplingDefaults(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(sampling_defaults=MODEL_DEFAULTS)


@pytest.fixture
def config() -> ServerConfig:
    return ServerConfig(sampling_defaults={"temperature": 0.6, "repetition_penalty": 1.05})


@pytest.mark.parametrize(("path", "body"), [(CHAT, chat_body()), (COMPLETIONS, completion_body())])
async def test_missing_fields_take_the_server_then_the_model_defaults(
    engine: FakeEngine, client: httpx.AsyncClient, path: str, body: dict
) -> None:
    assert (await client.post(path, json=body)).status_code == 200
    params = engine.requests[-1].params
    assert (params.temperature, params.repetition_penalty) == (0.6, 1.05)  # the server's
    assert (params.top_k, params.top_p, params.min_p) == (40, 0.95, 0.05)  # the model's


async def test_fields_the_request_sets_always_win(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    body = chat_body(temperature=0, top_k=0, top_p=1, min_p=0, repetition_penalty=1)
    assert (await client.post(CHAT, json=body)).status_code == 200
    params = engine.requests[-1].params
    assert params.greedy
    assert (params.top_k, params.top_p, params.min_p, params.repetition_penalty) == (0, 1, 0, 1)


async def test_the_model_card_shows_the_defaults_in_force(client: httpx.AsyncClient) -> None:
    card = (await client.get("/v1/models")).json()[0]
    assert card["sampling_defaults"] == {
        **MODEL_DEFAULTS.as_dict(),
        "temperature": 0.6,
        "repetition_penalty": 1.05,
    }


async def test_without_server_overrides_the_models_defaults_apply() -> None:
    engine = FakeEngine(sampling_defaults=MODEL_DEFAULTS)
    app = create_app(engine, ServerConfig(), chat=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post(CHAT, json=chat_body())).status_code == 200
    assert engine.requests[-1].params.temperature == 0.8
