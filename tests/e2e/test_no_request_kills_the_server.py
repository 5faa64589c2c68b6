"""Issue 9: requests that real clients send, each of which once aborted the whole process
(llama.cpp threw ``Unexpected empty grammar stack`` when ``ignore_eos`` banned the end token
that a complete grammar was waiting for). Each is sent to the suite's real server, which
must answer it and then still serve everyone else."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, on_engines
from tests.e2e.test_structured_output import FORCE_WEATHER, PERSON, WEATHER_TOOL
from tests.e2e.wire import chat_body, json_chunks, stream_bytes

pytestmark = [pytest.mark.e2e, on_engines()]

CHAT = "/v1/chat/completions"
YES_NO = {"type": "regex", "pattern": "(yes|no)"}
ONLY_EMPTY = {"type": "regex", "pattern": "(x){0}"}


def assert_still_serving(server: Server) -> None:
    """The process is alive and generates for the next client."""
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    response = httpx.post(
        f"{server.v1}/chat/completions",
        json=chat_body(server.model, max_tokens=3, temperature=0),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


CRASHERS: dict[str, dict[str, Any]] = {
    "json_object": {"response_format": {"type": "json_object"}},
    "regex": {"response_format": YES_NO},
    "regex, n=3, sampled": {"response_format": YES_NO, "n": 3, "temperature": 1.0},
    "regex matching only the empty string": {"response_format": ONLY_EMPTY},
    "json_schema": {
        "response_format": {"type": "json_schema", "json_schema": {"schema": PERSON}},
        "temperature": 0,
    },
    "forced tool call": {"tools": [WEATHER_TOOL], "tool_choice": FORCE_WEATHER, "temperature": 0},
    "required tool call, n=2": {"tools": [WEATHER_TOOL], "tool_choice": "required", "n": 2},
}


@pytest.mark.parametrize("fields", CRASHERS.values(), ids=CRASHERS.keys())
def test_a_complete_grammar_with_ignore_eos_ends_the_choice(
    server: Server, fields: dict[str, Any]
) -> None:
    body = chat_body(server.model, "Is the sky blue?", ignore_eos=True, max_tokens=96, **fields)

    response = httpx.post(f"{server.v1}/chat/completions", json=body, timeout=120)

    assert response.status_code == 200, response.text
    for choice in response.json()["choices"]:
        assert choice["finish_reason"] in {"stop", "tool_calls", "length"}
        content = choice["message"]["content"]
        if fields.get("response_format") == YES_NO:
            assert content in {"yes", "no"} and choice["finish_reason"] == "stop"
        if fields.get("response_format") == ONLY_EMPTY:
            assert content == "" and choice["finish_reason"] == "stop"
    assert_still_serving(server)


def test_streamed_with_logprobs_a_complete_grammar_ends_with_done(server: Server) -> None:
    body = chat_body(
        server.model,
        "Is the sky blue?",
        response_format=YES_NO,
        ignore_eos=True,
        n=2,
        logprobs=3,
        stream=True,
        max_tokens=16,
    )

    response, raw = stream_bytes(server.url, CHAT, body)

    assert response.status_code == 200
    chunks = json_chunks(raw)  # ends with data: [DONE]
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"]["content"] or ""
    assert all(re.fullmatch("yes|no", text) for text in texts), texts
    finishes = [c["finish_reason"] for chunk in chunks for c in chunk["choices"]]
    assert finishes.count("stop") == 2
    assert_still_serving(server)


def test_legacy_inference_with_a_complete_grammar_and_ignore_eos(server: Server) -> None:
    body = {
        "model": server.model,
        "prompt": "The answer is",
        "response_format": YES_NO,
        "ignore_eos": True,
        "max_tokens": 16,
    }

    response = httpx.post(f"{server.url}/inference", json=body, timeout=60)

    assert response.status_code == 200, response.text
    assert json.dumps(response.json())  # a whole body, not a cut connection
    assert_still_serving(server)


PENALTIES: dict[str, dict[str, Any]] = {
    "repetition_penalty": {"repetition_penalty": 1.3},
    "presence and frequency": {"presence_penalty": 1.5, "frequency_penalty": -0.5},
    "all three, streamed, n=2": {
        "repetition_penalty": 0.8,
        "presence_penalty": -2,
        "frequency_penalty": 2,
        "stream": True,
        "n": 2,
    },
}


@pytest.mark.parametrize("fields", PENALTIES.values(), ids=PENALTIES.keys())
def test_penalties_generate_instead_of_failing_the_engine(
    server: Server, fields: dict[str, Any]
) -> None:
    """Found by the fuzz suite: every request with a penalty called llama.cpp's
    ``llama_sampler_init_penalties`` with 4 of its 5 arguments, and the ``TypeError`` on the
    engine thread stopped the whole engine."""
    body = chat_body(server.model, "Say something.", max_tokens=12, temperature=0, **fields)
    response, raw = stream_bytes(server.url, CHAT, body)

    assert response.status_code == 200
    if fields.get("stream"):
        chunks = json_chunks(raw)
        assert not any("error" in chunk for chunk in chunks)
        assert sum(1 for c in chunks for ch in c["choices"] if ch["finish_reason"]) == 2
    else:
        message = json.loads(raw)["choices"][0]["message"]
        assert message["content"]
    assert_still_serving(server)
