"""The Responses API end to end with OpenAI's own clients: the ``openai`` SDK (Python and
TypeScript) and the OpenAI Agents SDK, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import Server, on_engines
from tests.e2e.test_typescript_sdk import run_script
from tether.config import DEFAULT_MODEL_ID

pytestmark = [pytest.mark.e2e, on_engines()]

MODEL = DEFAULT_MODEL_ID
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def test_create_and_retrieve(openai_client: openai.OpenAI) -> None:
    # Greedy, so the answer is the same every run (sampled, it could end by itself).
    response = openai_client.responses.create(
        model=MODEL, input="What is the capital of France?", max_output_tokens=12, temperature=0
    )
    assert response.status == "incomplete"  # the base model runs on to the limit
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text
    assert response.usage is not None and response.usage.output_tokens == 12
    again = openai_client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    items = openai_client.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]


def test_streamed_events_build_the_same_text(openai_client: openai.OpenAI) -> None:
    stream = openai_client.responses.create(
        model=MODEL, input="Name three colours.", max_output_tokens=16, stream=True, temperature=0
    )
    events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.incomplete"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text


def test_the_stream_helper_gives_the_final_response(openai_client: openai.OpenAI) -> None:
    # The helper wants ``response.completed``: a format the model completes (the base
    # model never ends a free answer by itself).
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    with openai_client.responses.stream(
        model=MODEL,
        input="Is the sky blue?",
        max_output_tokens=32,
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.status == "completed" and isinstance(json.loads(final.output_text)["ok"], bool)


def test_a_function_tool_round_trip(openai_client: openai.OpenAI) -> None:
    first = openai_client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}
    second = openai_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=8,
    )
    assert second.output_text
    assert second.previous_response_id == first.id


SEA = " ".join(f"The sea is wide and deep and blue, wave {n}." for n in range(24))


def test_previous_response_id_reuses_the_cached_prefix(openai_client: openai.OpenAI) -> None:
    first = openai_client.responses.create(
        model=MODEL, input=f"{SEA} Say something about it.", max_output_tokens=16, temperature=0
    )
    second = openai_client.responses.create(
        model=MODEL,
        input="And about rivers?",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    # The first prompt came from the prefix cache: all of it on llama.cpp, its whole blocks
    # on vLLM (which caches whole KV blocks, 128 tokens on CPU).
    assert first.usage.input_tokens > 256
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens // 2


def test_a_dropped_background_stream_resumes_exactly_once(
    openai_client: openai.OpenAI, server: Server
) -> None:
    stream = openai_client.responses.create(
        model=MODEL, input="Tell me a story.", max_output_tokens=48, background=True, stream=True
    )
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 7:
            break
    stream.close()  # the connection drops; the response goes on
    response_id = seen[0].response.id
    last = seen[-1].sequence_number
    rest = list(openai_client.responses.retrieve(response_id, stream=True, starting_after=last))
    numbers = [e.sequence_number for e in seen + rest]
    assert numbers == list(range(len(numbers)))  # every event exactly once, in order
    # Sampled, the story may end by itself before 48 tokens (seen on vLLM): the stream ends
    # with the terminal event of the status the response was stored with, either way.
    assert rest[-1].type in ("response.incomplete", "response.completed")
    text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    stored = openai_client.responses.retrieve(response_id)
    assert text == stored.output_text
    assert rest[-1].type == f"response.{stored.status}"


def test_background_polling_and_cancel(openai_client: openai.OpenAI, server: Server) -> None:
    queued = openai_client.responses.create(
        model=MODEL, input="Count to a thousand.", max_output_tokens=2000, background=True
    )
    assert queued.status in ("queued", "in_progress")
    cancelled = openai_client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert openai_client.responses.retrieve(queued.id).status == "cancelled"
    for _ in range(100):  # the engine drops the sequence at its next step
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        running = [
            line for line in metrics.splitlines() if line.startswith("tether:num_requests_running{")
        ]
        if running and running[0].endswith(" 0.0"):
            break
        time.sleep(0.05)
    assert running and running[0].endswith(" 0.0")


def test_unsupported_tools_are_a_clear_400(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.responses.create(
            model=MODEL, input="Search the web.", tools=[{"type": "web_search"}]
        )
    assert "only function tools" in caught.value.message


def test_the_typescript_sdk_creates_streams_and_resumes(server: Server) -> None:
    result: dict[str, Any] = run_script(server, "responses.mjs")
    assert result["plain"]
    assert result["streamed"] == result["streamed_final"]
    assert result["resumed"] == result["resumed_final"]
    assert result["retrieved"] == result["plain"]
    assert result["tool"] == "get_weather" and set(result["tool_arguments"]) == {"city"}
    assert result["answered_previous"] and result["answered_cached"] > 0


def test_an_agents_sdk_agent_calls_its_tool(server: Server) -> None:
    """``agents_weather.py`` runs a one-tool agent; in a subprocess, as an application would
    (the Agents SDK's imports trip a CPython 3.11.7 bug in the test process's later
    ``compile()`` calls: "AST constructor recursion depth mismatch")."""
    pytest.importorskip("agents")
    script = Path(__file__).with_name("agents_weather.py")
    done = subprocess.run(
        [sys.executable, str(script), server.v1, MODEL],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["calls"]) == 1
    assert isinstance(result["final_output"]["city"], str)
