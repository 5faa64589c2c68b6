"""The drain on SIGTERM (issue 9), driven through ``app.state.shutdown`` on a fake engine."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import CHAT, chat_body, drive, sse_payloads
from tests.api.fake_engine import FakeEngine, Script
from tether.api.shutdown import Shutdown


def shutdown_of(app: FastAPI) -> Shutdown:
    shutdown: Shutdown = app.state.shutdown
    return shutdown


async def test_draining_refuses_new_requests_and_health_says_so(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    drained = asyncio.Event()
    shutdown_of(app).begin(drained.set)

    refused = await client.post(CHAT, json=chat_body())
    health = await client.get("/health")
    metrics = await client.get("/metrics")

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "server_shutdown"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["id"] == refused.headers["x-request-id"]
    assert (health.status_code, health.json()) == (503, {"status": "draining"})
    assert metrics.status_code == 200
    await asyncio.wait_for(drained.wait(), 1)  # nothing in flight: drained at once


@pytest.mark.parametrize("drain_s, ends_with_error", [(0.2, True), (5.0, False)])
async def test_a_running_stream_finishes_or_ends_in_band(
    app: FastAPI, engine: FakeEngine, drain_s: float, ends_with_error: bool
) -> None:
    engine.default = Script(["a", "b", "c", "d"], delay_s=0.15)
    shutdown = shutdown_of(app)
    shutdown.drain_timeout_s = drain_s
    drained = asyncio.Event()

    stream = asyncio.ensure_future(drive(app, CHAT, chat_body(stream=True)))
    await asyncio.sleep(0.05)
    assert shutdown.in_flight == 1
    shutdown.begin(drained.set)
    exchange = await stream
    await asyncio.wait_for(drained.wait(), 2)

    payloads = sse_payloads(exchange.body)
    assert payloads[-1] == "[DONE]"
    assert ('"server_shutdown"' in payloads[-2]) is ends_with_error
    assert ('"finish_reason":"stop"' in exchange.body.decode()) is not ends_with_error
    assert shutdown.in_flight == 0


async def test_a_second_signal_cuts_the_drain_short(app: FastAPI, engine: FakeEngine) -> None:
    engine.default = Script(["a"] * 50, delay_s=0.1)
    shutdown = shutdown_of(app)
    drained = asyncio.Event()

    stream = asyncio.ensure_future(drive(app, CHAT, chat_body(stream=True), timeout_s=10))
    await asyncio.sleep(0.05)
    shutdown.begin(drained.set)  # 30 s of drain ahead
    await asyncio.sleep(0.1)
    shutdown.begin(drained.set)
    exchange = await stream

    assert '"server_shutdown"' in sse_payloads(exchange.body)[-2]
    await asyncio.wait_for(drained.wait(), 2)
