"""``/v1/chat/completions``: response and chunk fields, usage rules, tools, constraints."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import CHAT, chat_body, drive, sse_json
from tests.api.fake_engine import LOGPROB, FakeEngine, Script
from tether.chat.messages import Function, Message, ToolCall
from tether.engine.request import FinishReason
from tether.engine.structured import StructuredOutput, ToolFunction

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_CALL_TEXT = [
    '<tool_call>{"name": "get_weather", ',
    '"arguments": {"city": "Paris"}}</tool_call>',
]


async def test_non_streaming_response_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(seed=7))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == response.headers["x-request-id"]
    assert body["object"] == "chat.completion"
    assert body["model"] == "google/gemma-3-270m"
    assert isinstance(body["created"], int)
    assert body["prompt"] == []
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert choice["seed"] == 42
    assert choice["message"] == {"role": "assistant", "content": "Hello world!", "tool_calls": []}
    # 12 characters + EOS; the prompt is BOS + "<user>Hi<assistant>" (20).
    assert body["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 13,
        "total_tokens": 33,
        "cached_tokens": 0,
    }


async def test_template_gets_messages_and_content_parts(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
        },
    ]
    body = {
        "model": engine.model_id,
        "messages": messages,
        "user": "x",
        "parallel_tool_calls": False,
    }
    response = await client.post(CHAT, json=body)
    assert response.status_code == 200  # unknown fields are ignored
    [(rendered, tools)] = engine.templates
    # developer is system; text parts are joined with newlines, as vLLM does.
    assert rendered == [Message("system", "Be brief."), Message("user", "Hi \nthere")]
    assert tools == []
    prompt = "".join(engine.token_text(t) for t in engine.requests[0].prompt_token_ids)
    assert prompt == "<system>Be brief.<user>Hi \nthere<assistant>"
    assert engine.requests[0].prompt_token_ids[0] == 2  # BOS added by tokenize


async def test_sampling_fields_reach_the_engine(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    body = chat_body(
        max_tokens=20,
        temperature=0.3,
        top_p=0.9,
        top_k=5,
        min_p=0.1,
        repetition_penalty=1.1,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        seed=3,
        stop="\n",
        n=1,
        logit_bias={"65": -100, "66": 5},
        ignore_eos=True,
        safety_model="x",
    )
    assert (await client.post(CHAT, json=body)).status_code == 200
    params = engine.requests[0].params
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k) == (20, 0.3, 0.9, 5)
    assert (params.min_p, params.repetition_penalty) == (0.1, 1.1)
    assert (params.presence_penalty, params.frequency_penalty, params.seed) == (0.5, -0.5, 3)
    assert params.stop == ("\n",)
    assert params.logit_bias == {65: -100.0, 66: 5.0}
    assert params.ignore_eos is True
    assert params.structured is None


async def test_default_max_tokens_is_the_rest_of_the_context(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    await client.post(CHAT, json=chat_body())
    request = engine.requests[0]
    assert request.params.max_tokens == engine.context_length - len(request.prompt_token_ids)


async def test_truncate_lowers_max_tokens_to_fit(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    body = chat_body(max_tokens=10_000, context_length_exceeded_behavior="truncate")
    assert (await client.post(CHAT, json=body)).status_code == 200
    request = engine.requests[0]
    assert request.params.max_tokens == engine.context_length - len(request.prompt_token_ids)


async def test_context_length_exceeded_is_400_before_generation(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    response = await client.post(CHAT, json=chat_body(max_tokens=10_000))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "max_tokens"
    assert "256" in error["message"]
    assert engine.requests == []


async def test_prompt_alone_over_context_is_400_even_with_truncate(
    client: httpx.AsyncClient,
) -> None:
    body = chat_body("x" * 300, context_length_exceeded_behavior="truncate")
    response = await client.post(CHAT, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


async def test_together_logprobs_object_for_an_integer(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(logprobs=2))
    logprobs = response.json()["choices"][0]["logprobs"]
    assert set(logprobs) == {"tokens", "token_logprobs", "token_ids", "top_logprobs"}
    assert "".join(logprobs["tokens"]) == "Hello world!"  # EOS excluded
    assert logprobs["token_ids"][0] == ord("H")
    assert logprobs["token_logprobs"][0] == LOGPROB
    assert logprobs["top_logprobs"][0] == {"H": LOGPROB, "I": LOGPROB - 1}


async def test_logprobs_as_an_integer(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(logprobs=3))
    assert engine.requests[0].params.logprobs == 3
    assert len(response.json()["choices"][0]["logprobs"]["top_logprobs"][0]) == 3


async def test_echo_returns_the_templated_prompt(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(echo=True))
    assert response.json()["prompt"] == [{"text": "<user>Hi<assistant>", "logprobs": None}]


async def test_n_choices_non_streaming(client: httpx.AsyncClient) -> None:
    body = (await client.post(CHAT, json=chat_body(n=2))).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["message"]["content"] == "Hello world!" for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 26
    assert body["usage"]["prompt_tokens"] == 20


# --- streaming -----------------------------------------------------------------------------


async def test_stream_chunk_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True))
    chunks = sse_json(response.content)
    texts = [c["choices"][0]["delta"]["content"] for c in chunks[:-1]]
    assert texts == ["Hello", " world", "!"]
    first = chunks[0]
    assert {c["id"] for c in chunks} == {response.headers["x-request-id"]}
    assert first["object"] == "chat.completion.chunk"
    assert first["model"] == "google/gemma-3-270m"
    assert first["usage"] is None
    [choice] = first["choices"]
    assert choice["index"] == 0
    assert choice["text"] == "Hello"
    assert choice["logprobs"] is None  # not asked for: null, as Together sends
    assert "top_logprobs" not in choice
    assert choice["finish_reason"] is None
    assert choice["delta"] == {
        "role": "assistant",
        "content": "Hello",
        "token_id": ord("o"),
        "tool_calls": None,
    }
    # One StepOutput with five tokens: the token object names the last one.
    assert first["token"] == {"id": ord("o"), "text": "o", "logprob": LOGPROB, "special": False}
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)


async def test_streamed_logprobs_only_when_asked_float_and_alternatives(
    client: httpx.AsyncClient,
) -> None:
    """LangChain's ChatOpenAI.stream() raised TypeError on a float ``logprobs`` that nobody
    asked for (issue 14); asked with an integer, the float and ``top_logprobs`` come."""
    plain = sse_json((await client.post(CHAT, json=chat_body(stream=True))).content)
    asked = sse_json((await client.post(CHAT, json=chat_body(stream=True, logprobs=2))).content)

    assert all(c["choices"][0]["logprobs"] is None for c in plain)
    assert all(c["token"]["logprob"] == LOGPROB for c in plain if "token" in c)
    first = asked[0]["choices"][0]
    assert first["logprobs"] == LOGPROB
    assert first["top_logprobs"] == {"o": LOGPROB, "p": LOGPROB - 1}


async def test_openai_style_logprobs_follow_openais_shape(client: httpx.AsyncClient) -> None:
    """``logprobs: true`` (the openai SDK) gets ``logprobs.content[]``, streamed and not; the
    SDK's ``chat.completions.stream()`` helper crashed on Together's float (issue 14)."""
    body = chat_body(logprobs=True, top_logprobs=2)
    whole = (await client.post(CHAT, json=body)).json()["choices"][0]["logprobs"]
    chunks = sse_json((await client.post(CHAT, json={**body, "stream": True})).content)

    first = whole["content"][0]
    assert first == {
        "token": "H",
        "logprob": LOGPROB,
        "bytes": [ord("H")],
        "top_logprobs": [
            {"token": "H", "logprob": LOGPROB, "bytes": [ord("H")]},
            {"token": "I", "logprob": LOGPROB - 1, "bytes": [ord("I")]},
        ],
    }
    assert "".join(entry["token"] for entry in whole["content"]) == "Hello world!"
    streamed = [c["choices"][0]["logprobs"] for c in chunks if c["choices"][0]["text"]]
    assert streamed[0]["content"][0] == first  # the chunk "Hello" carries its five tokens
    assert "".join(e["token"] for lp in streamed for e in lp["content"]) == "Hello world!"


async def test_max_completion_tokens_is_max_tokens(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    ok = await client.post(CHAT, json=chat_body(max_completion_tokens=7))
    both = await client.post(CHAT, json=chat_body(max_completion_tokens=7, max_tokens=7))
    differ = await client.post(CHAT, json=chat_body(max_completion_tokens=7, max_tokens=9))

    assert (ok.status_code, both.status_code) == (200, 200)
    assert [r.params.max_tokens for r in engine.requests] == [7, 7]
    assert differ.status_code == 400
    assert differ.json()["error"]["param"] == "max_completion_tokens"


async def test_stream_finishing_chunk_carries_usage_once(client: httpx.AsyncClient) -> None:
    chunks = sse_json((await client.post(CHAT, json=chat_body(stream=True))).content)
    last = chunks[-1]
    [choice] = last["choices"]
    assert choice["delta"]["content"] == ""
    assert choice["text"] == ""
    assert choice["finish_reason"] == "stop"
    assert choice["seed"] == 42
    assert last["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 13,
        "total_tokens": 33,
        "cached_tokens": 0,
    }
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_length_finish_after_the_last_text(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(["ab", "cd"], finish=FinishReason.LENGTH)
    chunks = sse_json((await client.post(CHAT, json=chat_body(stream=True))).content)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["ab", "cd", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_include_usage_moves_usage_to_a_separate_chunk(client: httpx.AsyncClient) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    chunks = sse_json((await client.post(CHAT, json=body)).content)
    usage_chunk, finishing = chunks[-1], chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] == 33
    assert finishing["choices"][0]["finish_reason"] == "stop"
    assert finishing["usage"] is None
    assert sum(1 for c in chunks if c["usage"] is not None) == 1  # LangChain sums usage


async def test_n2_stream_each_choice_has_its_own_index_and_finish(
    client: httpx.AsyncClient,
) -> None:
    chunks = sse_json((await client.post(CHAT, json=chat_body(stream=True, n=2))).content)
    for index in (0, 1):
        mine = [c for c in chunks if c["choices"][0]["index"] == index]
        assert "".join(c["choices"][0]["delta"]["content"] for c in mine) == "Hello world!"
        assert [c["choices"][0]["finish_reason"] for c in mine][-1] == "stop"
        assert sum(1 for c in mine if c["choices"][0]["finish_reason"]) == 1
    with_usage = [c for c in chunks if c["usage"] is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert with_usage[0]["usage"]["completion_tokens"] == 26


async def test_held_back_output_sends_no_chunk(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(["a", "", "b"])
    chunks = sse_json((await client.post(CHAT, json=chat_body(stream=True))).content)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b", ""]


async def test_stream_options_without_stream_is_ignored(client: httpx.AsyncClient) -> None:
    body = chat_body(stream_options={"include_usage": True})
    assert (await client.post(CHAT, json=body)).json()["usage"]["total_tokens"] == 33


# --- response_format -----------------------------------------------------------------------


async def test_json_object_becomes_any_object(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    body = chat_body(response_format={"type": "json_object"})
    assert (await client.post(CHAT, json=body)).status_code == 200
    assert engine.requests[0].params.structured == StructuredOutput.json_object()


async def test_json_schema_both_spellings_give_the_same_schema(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    openai = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    together = {"type": "json_schema", "schema": schema}
    for fmt in (openai, together):
        assert (await client.post(CHAT, json=chat_body(response_format=fmt))).status_code == 200
    first, second = (r.params.structured for r in engine.requests)
    assert first == second == StructuredOutput(json_schema=schema)


async def test_regex_response_format(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    body = chat_body(response_format={"type": "regex", "pattern": "(yes|no)"})
    assert (await client.post(CHAT, json=body)).status_code == 200
    assert engine.requests[0].params.structured == StructuredOutput(regex="(yes|no)")


async def test_json_schema_without_schema_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(response_format={"type": "json_schema"}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"


# --- tools ---------------------------------------------------------------------------------


async def test_auto_tool_call_non_streaming(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    engine.default = Script(TOOL_CALL_TEXT)
    response = await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL]))
    [choice] = response.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    parameters = WEATHER_TOOL["function"]["parameters"]
    assert engine.templates[0][1] == [Function("get_weather", "Weather in a city", parameters)]
    # auto: the model may answer in text, but a call it opens must be whole (issue 19).
    spec = engine.requests[0].params.structured
    assert spec is not None and spec.lazy_calls is not None
    assert spec.lazy_calls.triggers == ("<tool_call>",)
    [section] = spec.lazy_calls.sections
    [shape] = section.shapes
    assert shape.begin == ('{"name": "get_weather", "arguments": ',)
    assert (shape.parameters, shape.end) == (parameters, ("}</tool_call>",))


async def test_auto_tools_with_a_response_format_keep_the_response_format(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    fmt = {"type": "json_object"}
    await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL], response_format=fmt))
    assert engine.requests[0].params.structured == StructuredOutput.json_object()


async def test_auto_tools_plain_answer_stays_text(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL]))
    [choice] = response.json()["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "Hello world!"
    assert choice["message"]["tool_calls"] == []


async def test_tool_choice_none_hides_tools_from_the_template(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(TOOL_CALL_TEXT)
    response = await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL], tool_choice="none"))
    assert engine.templates[0][1] == []
    assert response.json()["choices"][0]["finish_reason"] == "stop"


async def test_forced_tool_choice_constrains_to_a_call(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(['{"name": "get_weather", "arguments": {"city": "Oslo"}}'])
    choice = {"type": "function", "function": {"name": "get_weather"}}
    response = await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL], tool_choice=choice))
    spec = engine.requests[0].params.structured
    parameters = WEATHER_TOOL["function"]["parameters"]
    assert spec == StructuredOutput(tool_call=(ToolFunction("get_weather", parameters),))
    [answer] = response.json()["choices"]
    assert answer["finish_reason"] == "tool_calls"
    assert answer["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_forced_unknown_function_is_400(client: httpx.AsyncClient) -> None:
    choice = {"type": "function", "function": {"name": "nope"}}
    response = await client.post(CHAT, json=chat_body(tools=[WEATHER_TOOL], tool_choice=choice))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"


async def test_streamed_tool_call_delta_sequence(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(TOOL_CALL_TEXT)
    body = chat_body(stream=True, tools=[WEATHER_TOOL])
    chunks = sse_json((await client.post(CHAT, json=body)).content)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert len(chunks) == 4
    role, start, arguments, finish = deltas
    assert role["role"] == "assistant" and role["content"] == "" and role["tool_calls"] is None
    [call] = start["tool_calls"]
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": ""}
    [more] = arguments["tool_calls"]
    assert more["index"] == 0
    assert json.loads(more["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    # No reasoning model: usage has no reasoning details (only a reasoning model's has).
    assert "completion_tokens_details" not in chunks[-1]["usage"]
    assert finish["content"] == ""
    assert not any("<tool_call>" in (d["content"] or "") for d in deltas)


async def test_streamed_text_with_tools_is_not_held(engine: FakeEngine, app: FastAPI) -> None:
    engine.default = Script(["Sure", ", it is", " sunny"], delay_s=0.05)
    exchange = await drive(app, CHAT, chat_body(stream=True, tools=[WEATHER_TOOL]))
    data_times = [t for t, part in exchange.body_times if part.startswith(b"data: {")]
    chunks = sse_json(exchange.body)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == [
        "Sure",
        ", it is",
        " sunny",
        "",
    ]
    assert data_times[-1] - data_times[0] >= 0.08  # streamed as generated, not at the end


async def test_streamed_json_that_is_not_a_call_is_released_as_text(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(['{"a": ', "1}"])
    body = chat_body(stream=True, tools=[WEATHER_TOOL])
    chunks = sse_json((await client.post(CHAT, json=body)).content)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == '{"a": 1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "robot", "content": "beep"}],
        [{"content": "no role"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": 42}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}],
        [{"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}],
            }
        ],
    ],
)
async def test_messages_the_chat_layer_cannot_take_are_400(
    engine: FakeEngine, client: httpx.AsyncClient, messages: list[dict[str, object]]
) -> None:
    body = {"model": engine.model_id, "messages": messages}
    response = await client.post(CHAT, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages"
    assert engine.templates == []


async def test_a_malformed_tool_is_400_naming_tools(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(tools=[{"type": "function"}]))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools"


async def test_deprecated_function_role_and_function_call_are_tool_messages(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {"role": "function", "name": "get_weather", "content": "12C"},
    ]
    response = await client.post(CHAT, json={"model": engine.model_id, "messages": messages})

    assert response.status_code == 200, response.text
    [(rendered, _)] = engine.templates
    assert rendered[1] == Message(
        "assistant", None, tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),)
    )
    assert rendered[2] == Message("tool", "12C", name="get_weather")
