"""Grammar-constrained output on the real model: JSON schemas and forced tool calls.

Schemas bound every value's length (``maxLength``, ``enum``, booleans) and decoding is
greedy, so the constrained output closes within the small ``max_tokens`` these tests use on
every run (sampled at temperature 1, a 6-character name can take 35 one-character tokens).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from together import Together

from tests.e2e.conftest import Server, on_engines
from tests.e2e.wire import assemble_tool_call, chat_body, json_chunks, stream_bytes

pytestmark = [pytest.mark.e2e, on_engines()]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "colour": {"enum": ["red", "green", "blue"]},
        "adult": {"type": "boolean"},
    },
    "required": ["name", "colour", "adult"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 8},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
OTHER_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def _check_weather_arguments(arguments: str) -> None:
    parsed = json.loads(arguments)
    assert set(parsed) == {"city", "unit"}
    assert isinstance(parsed["city"], str) and len(parsed["city"]) <= 8
    assert parsed["unit"] in {"celsius", "fahrenheit"}


def _check_person(content: str) -> None:
    person = json.loads(content)
    assert set(person) >= {"name", "colour", "adult"}
    assert isinstance(person["name"], str) and len(person["name"]) <= 6
    assert person["colour"] in {"red", "green", "blue"}
    assert isinstance(person["adult"], bool)


def test_json_schema_output_parses_with_the_required_keys(
    openai_client: openai.OpenAI, server: Server
) -> None:
    answer = openai_client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        max_tokens=32,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
    )

    assert answer.choices[0].finish_reason == "stop"
    content = answer.choices[0].message.content
    assert content is not None
    _check_person(content)


def test_together_older_schema_form_streams_json(together_client: Together, server: Server) -> None:
    stream = together_client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        max_tokens=32,
        temperature=0,
        stream=True,
        response_format={"type": "json_schema", "schema": PERSON},
    )
    chunks = list(stream)

    _check_person("".join(c.choices[0].delta.content or "" for c in chunks))
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_forced_tool_call_returns_arguments_matching_the_schema(
    openai_client: openai.OpenAI, server: Server
) -> None:
    answer = openai_client.chat.completions.create(
        model=server.model,
        messages=ASK_WEATHER,
        max_tokens=32,
        temperature=0,
        tools=[WEATHER_TOOL, OTHER_TOOL],
        tool_choice=FORCE_WEATHER,
    )

    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id.startswith("call_")
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    _check_weather_arguments(calls[0].function.arguments)


def _tool_deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for c in chunks for call in c["choices"][0]["delta"]["tool_calls"] or []]


def test_streamed_tool_call_follows_the_contract_delta_sequence(server: Server) -> None:
    body = chat_body(
        server.model,
        ASK_WEATHER[0]["content"],
        max_tokens=32,
        temperature=0,
        stream=True,
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
    )

    chunks = json_chunks(stream_bytes(server.url, "/v1/chat/completions", body)[1])

    deltas = _tool_deltas(chunks)
    first, *rest = deltas
    assert first["index"] == 0
    assert first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert rest and all(set(d) == {"index", "function"} and d["index"] == 0 for d in rest)
    assert all(set(d["function"]) == {"arguments"} for d in rest)
    _check_weather_arguments("".join(d["function"]["arguments"] for d in rest))
    opening = next(i for i, c in enumerate(chunks) if c["choices"][0]["delta"]["tool_calls"])
    assert opening >= 1 and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert not any(c["choices"][0]["delta"]["content"] for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert [c["choices"][0]["finish_reason"] for c in chunks][:-1] == [None] * (len(chunks) - 1)


def test_openai_sdk_assembles_a_streamed_tool_call(
    openai_client: openai.OpenAI, server: Server
) -> None:
    stream = openai_client.chat.completions.create(
        model=server.model,
        messages=ASK_WEATHER,
        max_tokens=32,
        temperature=0,
        stream=True,
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    name, arguments, finish = assemble_tool_call(stream)

    assert (name, finish) == ("get_weather", "tool_calls")
    _check_weather_arguments(arguments)


# Issue 24: the schema's promise holds, or the request is refused, the same on both engines.
SCORE = {
    "type": "object",
    "properties": {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "votes": {"type": "integer", "multipleOf": 10, "minimum": 0, "maximum": 1000},
        "contact": {"type": "string", "format": "email", "maxLength": 24},
    },
    "required": ["rating", "votes", "contact"],
    "additionalProperties": False,
}


def test_bounds_multiples_and_formats_are_enforced(
    openai_client: openai.OpenAI, server: Server
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    answer = openai_client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Rate the film as JSON."}],
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": SCORE}},
    )
    assert answer.choices[0].finish_reason == "stop"
    content = answer.choices[0].message.content
    assert content is not None
    validator = jsonschema.Draft202012Validator(
        SCORE, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(json.loads(content))


def test_a_keyword_that_cannot_be_enforced_is_a_400_naming_it(
    openai_client: openai.OpenAI, server: Server
) -> None:
    """On vLLM this was a 500 and the engine reported dead (xgrammar failed inside it)."""
    tags = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    with pytest.raises(openai.BadRequestError, match="uniqueItems"):
        openai_client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "List tags as JSON."}],
            max_tokens=16,
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": tags}},
        )
    # The engine is alive and serves the next request.
    answer = openai_client.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert answer.choices[0].message.content is not None
