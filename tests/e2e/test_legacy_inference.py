"""Together's documented ``requests`` + ``sseclient-py`` recipe on ``POST /inference``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import sseclient

from tests.e2e.conftest import Server, on_engines

pytestmark = [pytest.mark.e2e, on_engines()]


def test_sseclient_recipe_streams_text_until_done(server: Server) -> None:
    payload = {"model": server.model, "prompt": "Once upon a time", "max_tokens": 12}
    payload["stream_tokens"] = True
    pieces: list[str] = []
    last: dict[str, Any] = {}
    with requests.post(f"{server.url}/inference", json=payload, stream=True, timeout=60) as resp:
        assert resp.status_code == 200
        for event in sseclient.SSEClient(resp).events():
            if event.data == "[DONE]":
                break
            last = json.loads(event.data)
            pieces.append(last["choices"][0]["text"])

    assert "".join(pieces).strip()
    assert last["choices"][0]["finish_reason"] in {"stop", "length"}
    assert last["generated_text"] == "".join(pieces)
    assert last["details"]["generated_tokens"] == last["usage"]["completion_tokens"]


def test_non_streaming_inference_has_old_and_new_shapes(server: Server) -> None:
    payload = {"model": server.model, "prompt": "Once upon a time", "max_tokens": 8}
    response = requests.post(f"{server.url}/api/inference", json=payload, timeout=60)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "finished"
    assert body["output"]["choices"] == body["choices"]
    assert body["choices"][0]["text"]
    assert body["prompt"] == ["Once upon a time"]
    assert body["usage"]["completion_tokens"] <= 8
