"""``/metrics``: vLLM's metric names under ``tether:``, fed by real requests."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import CHAT, chat_body
from tests.api.fake_engine import FakeEngine
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.engine.request import EngineStats, SpecCounts


def sample(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.rsplit(" ", 1)[1])


async def test_exposition_after_requests(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    await client.post(CHAT, json=chat_body())
    await client.post(CHAT, json=chat_body(stream=True))
    engine.waiting = 3
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "tether:time_to_first_token_seconds_bucket",
        "tether:inter_token_latency_seconds_bucket",
        "tether:e2e_request_latency_seconds_bucket",
        "tether:request_queue_time_seconds_bucket",
    ):
        assert name in text
    assert sample(text, "tether:e2e_request_latency_seconds_count") == 2
    assert sample(text, "tether:time_to_first_token_seconds_count") == 2
    assert sample(text, "tether:inter_token_latency_seconds_count") >= 4
    assert sample(text, "tether:request_queue_time_seconds_sum") > 0
    assert sample(text, "tether:prompt_tokens_total") == 40
    assert sample(text, "tether:generation_tokens_total") == 26
    assert sample(text, "tether:num_requests_waiting") == 3
    assert sample(text, "tether:num_requests_running") == 0


async def test_each_app_has_its_own_registry(client: httpx.AsyncClient) -> None:
    # A second app in the same process must not collide on metric names.
    create_app(FakeEngine(), ServerConfig())
    assert (await client.get("/metrics")).status_code == 200


async def test_speculative_decoding_is_counted(
    engine: FakeEngine, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = SpecCounts(drafts=3, draft_tokens=40, accepted_tokens=31)
    monkeypatch.setattr(engine, "stats", lambda: EngineStats(0, 0, speculation=counts))
    text = (await client.get("/metrics")).text
    assert sample(text, "tether:spec_decode_num_drafts_total") == 3
    assert sample(text, "tether:spec_decode_num_draft_tokens_total") == 40
    assert sample(text, "tether:spec_decode_num_accepted_tokens_total") == 31
