"""The HTTP side of a load: one streamed completion, timed chunk by chunk, and the plain
JSON calls around the loads (the model list, a prompt-length probe)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tether.bench.metrics import Sample
from tether.client.api import (
    DONE,
    ServerError,
    TokenMeter,
    Unreachable,
    base_url,
    error_message,
    model_cards,
    sse_data,
)


async def get_json(http: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    try:
        response = await http.request(method, path, **kw)
    except httpx.TransportError as exc:
        where = base_url(str(http.base_url))
        raise Unreachable(f"cannot reach {where}: {exc or type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise ServerError(response.status_code, error_message(response.text))
    return response.json()


async def pick_model(http: httpx.AsyncClient, model: str | None) -> str:
    """``model``, or else the first the server lists."""
    if model:
        return model
    cards = model_cards(await get_json(http, "GET", "/models"))
    if not cards:
        raise ServerError(200, "the server lists no model; pass --model")
    return str(cards[0]["id"])


async def one_request(http: httpx.AsyncClient, body: dict[str, Any]) -> Sample:
    """Send one streamed completion and time its text chunks. Never raises on a server error:
    a failed request is a sample too."""
    meter = TokenMeter()
    try:
        await _stream(http, body, meter)
    except (httpx.HTTPError, ServerError, ValueError) as exc:
        meter.finish()
        return Sample(ok=False, latency_s=meter.duration_s, error=str(exc) or type(exc).__name__)
    meter.finish()
    return Sample(
        ok=True,
        latency_s=meter.duration_s,
        output_tokens=meter.tokens,
        ttft_s=meter.ttft_s,
        gaps_s=meter.gaps_s,
        usage_reported=meter.usage_tokens is not None,
    )


async def _stream(http: httpx.AsyncClient, body: dict[str, Any], meter: TokenMeter) -> None:
    async with http.stream("POST", "/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise ServerError(response.status_code, error_message(response.text))
        async for data in _adata(response):
            if data == DONE:
                return
            chunk = json.loads(data)
            if "error" in chunk:
                raise ServerError(200, error_message(data))
            meter.observe(chunk)


async def _adata(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        for data in sse_data([line]):
            yield data
