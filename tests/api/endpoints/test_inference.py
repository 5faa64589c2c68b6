"""Legacy ``/inference``: the old stream shape and the two-shapes-in-one response."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import sse_json
from tests.api.fake_engine import MODEL_ID, FakeEngine, Script
from tether.engine.request import FinishReason

BODY = {"model": MODEL_ID, "prompt": "Alan Turing was", "max_tokens": 4, "seed": 42}


@pytest.mark.parametrize("path", ["/inference", "/api/inference"])
async def test_non_streaming_has_old_and_new_shapes(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json=BODY)
    body = response.json()
    assert body["id"] == response.headers["x-request-id"]
    assert body["status"] == "finished"
    assert body["prompt"] == ["Alan Turing was"]
    assert body["model"] == MODEL_ID
    assert body["args"]["max_tokens"] == 4 and body["args"]["prompt"] == "Alan Turing was"
    choice = {"text": "Hello world!", "index": 0, "finish_reason": "stop"}
    assert body["output"]["choices"] == [choice]
    assert body["output"]["result_type"] == "language-model-inference"
    assert body["choices"] == [choice]
    assert body["usage"] == body["output"]["usage"]
    assert body["usage"]["completion_tokens"] == 13
    assert body["object"] == "text.completion"
    assert isinstance(body["created"], int)


@pytest.mark.parametrize("flag", ["stream_tokens", "stream"])
async def test_stream_shape(engine: FakeEngine, client: httpx.AsyncClient, flag: str) -> None:
    engine.default = Script([" a", " brilliant"], finish=FinishReason.LENGTH, seed=7)
    response = await client.post("/inference", json={**BODY, flag: True})
    chunks = sse_json(response.content)
    assert [c["choices"][0]["text"] for c in chunks] == [" a", " brilliant", ""]
    first = chunks[0]
    assert set(first) == {
        "id",
        "choices",
        "result_type",
        "token",
        "generated_text",
        "details",
        "usage",
    }
    assert first["choices"] == [{"text": " a", "index": 0, "finish_reason": None}]
    assert first["result_type"] == "language-model-inference"
    assert first["token"] == {"id": ord("a"), "text": "a", "logprob": -0.5, "special": False}
    assert first["generated_text"] is None and first["details"] is None and first["usage"] is None
    last = chunks[-1]
    assert last["choices"] == [{"text": "", "index": 0, "finish_reason": "length"}]
    assert last["generated_text"] == " a brilliant"
    assert last["details"] == {"finish_reason": "length", "generated_tokens": 12, "seed": 7}
    assert last["usage"]["completion_tokens"] == 12
