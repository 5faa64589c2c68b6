"""Concurrency and cancellation on a real server (``--max-seqs 16``)."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import Server, on_engines
from tests.e2e.wire import chat_body, running_requests

pytestmark = [pytest.mark.e2e, on_engines()]

STREAMS = 16
FREED_WITHIN_S = 10.0


async def test_16_concurrent_streams_all_finish(
    async_openai_client: openai.AsyncOpenAI, server: Server
) -> None:
    async def one(i: int) -> tuple[str, str | None]:
        stream = await async_openai_client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": f"Count from {i} to {i + 5}."}],
            max_tokens=16,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        return text, chunks[-1].choices[0].finish_reason

    results = await asyncio.gather(*(one(i) for i in range(STREAMS)))

    assert all(text for text, _ in results)
    assert all(finish in {"stop", "length"} for _, finish in results)
    await _until_idle(server, within_s=2.0)


async def test_dropped_connection_frees_the_engine(server: Server) -> None:
    # ignore_eos: an answer that ended by itself would free the engine without any abort.
    # 1000 forced tokens take far longer than FREED_WITHIN_S on a CPU, so a request still
    # running after it means the closed connection did not abort it.
    body = chat_body(server.model, "Tell me a long story.", max_tokens=1000, stream=True)
    body["ignore_eos"] = True
    url = f"{server.url}/v1/chat/completions"
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", url, json=body) as response,
    ):
        assert response.status_code == 200
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: {")
            if seen == 2:
                break
        assert running_requests(server.url) == 1
    # Leaving the block closed the connection mid-stream.

    await _until_idle(server, within_s=FREED_WITHIN_S)


async def _until_idle(server: Server, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while (running := running_requests(server.url)) != 0:
        assert time.monotonic() < deadline, f"{running:.0f} requests still running"
        await asyncio.sleep(0.2)
