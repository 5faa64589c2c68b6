"""A reasoning model's chat: the text splits into ``reasoning`` and ``content`` on the wire,
the request's reasoning switches reach the template, and usage counts reasoning tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import CHAT, chat_body, sse_json
from tests.api.fake_engine import FakeEngine, Script
from tether.api.app import create_app
from tether.chat.reasoning import ReasoningMarkers
from tether.config import ServerConfig
from tether.engine.structured import ThinkingPrefix

THINK = ReasoningMarkers("<think>", "</think>")
ANSWER = ["Two", " and two.", "\n</thi", "nk>\n\n", "4"]
REASONING_TOKENS = len("Two and two.\n</think>\n\n")  # the fake engine: a token per character


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(default=Script(ANSWER), reasoning_markers=THINK)


def deltas(chunks: list[dict]) -> list[dict]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


async def test_streamed_reasoning_is_in_delta_reasoning_never_in_content(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True))
    chunks = sse_json(response.content)
    reasoning = "".join(d.get("reasoning") or "" for d in deltas(chunks))
    content = "".join(d["content"] or "" for d in deltas(chunks))
    assert reasoning == "Two and two."
    assert content == "4"
    thinking = [d for d in deltas(chunks) if d.get("reasoning")]
    assert all(d["reasoning_content"] == d["reasoning"] and d["content"] is None for d in thinking)
    assert "think>" not in response.text
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": REASONING_TOKENS}
    assert usage["completion_tokens"] == len("".join(ANSWER)) + 1  # and the fake's EOS


async def test_reasoning_chunks_carry_their_token_and_logprob(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True, logprobs=1))
    thinking = [c for c in sse_json(response.content) if c["choices"][0]["delta"].get("reasoning")]
    assert [c["token"]["text"] for c in thinking] == ["o", "."]  # each output's last
    assert all(isinstance(c["choices"][0]["logprobs"], float) for c in thinking)


async def test_non_streaming_message_has_reasoning_and_usage_counts_it(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.post(CHAT, json=chat_body())).json()
    message = body["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"] == "Two and two."
    assert message["content"] == "4"
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": REASONING_TOKENS}


async def test_each_of_n_choices_splits_on_its_own(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True, n=2))
    chunks = sse_json(response.content)
    for index in (0, 1):
        mine = [
            c["choices"][0]["delta"]
            for c in chunks
            if c["choices"] and c["choices"][0]["index"] == index
        ]
        assert "".join(d.get("reasoning") or "" for d in mine) == "Two and two."
        assert "".join(d["content"] or "" for d in mine) == "4"
    assert chunks[-1]["usage"]["completion_tokens_details"] == {
        "reasoning_tokens": 2 * REASONING_TOKENS
    }


async def test_a_model_without_reasoning_markers_answers_as_before() -> None:
    engine = FakeEngine(default=Script(["<think>x</think>y"]))
    app = create_app(engine, ServerConfig(), chat=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = (await c.post(CHAT, json=chat_body())).json()
    assert body["choices"][0]["message"]["content"] == "<think>x</think>y"
    assert "reasoning" not in body["choices"][0]["message"]
    assert "completion_tokens_details" not in body["usage"]


@pytest.mark.parametrize(
    "fields",
    [
        {"reasoning": {"enabled": False}},
        {"chat_template_kwargs": {"enable_thinking": False}},
        {"reasoning_effort": "none"},
    ],
)
async def test_reasoning_off_reaches_the_template(
    engine: FakeEngine, client: httpx.AsyncClient, fields: dict
) -> None:
    engine.default = Script(["4"])
    body = (await client.post(CHAT, json=chat_body(**fields))).json()
    assert engine.variables[-1]["enable_thinking"] is False
    prompt = "".join(chr(t) for t in engine.requests[-1].prompt_token_ids[1:])
    assert prompt.endswith("<assistant>")
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "tool_calls": [],
        "reasoning": None,
        "reasoning_content": None,
    }


async def test_reasoning_off_closes_a_template_that_opens_it_anyway(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.always_opens = True
    engine.default = Script(["4"])
    body = (await client.post(CHAT, json=chat_body(reasoning={"enabled": False}))).json()
    prompt = "".join(chr(t) for t in engine.requests[-1].prompt_token_ids[1:])
    assert prompt.endswith("<assistant><think>\n\n</think>\n\n")
    assert body["choices"][0]["message"]["content"] == "4"
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


async def test_effort_and_template_kwargs_reach_the_template(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    fields = {"reasoning_effort": "low", "chat_template_kwargs": {"custom": [1, 2]}}
    assert (await client.post(CHAT, json=chat_body(**fields))).status_code == 200
    assert engine.variables[-1] == {
        "enable_thinking": True,
        "thinking": True,
        "reasoning_effort": "low",
        "custom": [1, 2],
    }


async def test_an_earlier_answers_reasoning_reaches_the_template(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    messages = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning": "Two and two."},
        {"role": "assistant", "content": "6", "reasoning_content": "Three and three."},
        {"role": "user", "content": "And 4+4?"},
    ]
    response = await client.post(CHAT, json={**chat_body(), "messages": messages})
    assert response.status_code == 200
    history = engine.templates[-1][0]
    assert [m.reasoning for m in history] == [None, "Two and two.", "Three and three.", None]


@pytest.mark.parametrize(
    "fields",
    [
        {"chat_template_kwargs": {"messages": []}},
        {"chat_template_kwargs": "yes"},
        {"reasoning_effort": "extreme"},
        {"reasoning": {"enabled": "maybe"}},
    ],
)
async def test_bad_reasoning_fields_are_a_400_naming_the_field(
    client: httpx.AsyncClient, fields: dict
) -> None:
    response = await client.post(CHAT, json=chat_body(**fields))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == next(iter(fields)).split(".")[0]


async def test_a_tool_call_after_reasoning_is_a_tool_call(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.default = Script(
        [
            "Weather needed.</think>",
            '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>',
        ]
    )
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    response = await client.post(CHAT, json=chat_body(stream=True, tools=[tool]))
    chunks = sse_json(response.content)
    assert "".join(d.get("reasoning") or "" for d in deltas(chunks)) == "Weather needed."
    calls = [d["tool_calls"] for d in deltas(chunks) if d.get("tool_calls")]
    assert calls[0][0]["function"]["name"] == "get_weather"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    body = (await client.post(CHAT, json=chat_body(tools=[tool]))).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["reasoning"] == "Weather needed."
    # The call is constrained wherever it opens; the reasoning's markers are free text (a
    # vocabulary may have them as special tokens).
    spec = engine.requests[-1].params.structured
    assert spec is not None and spec.lazy_calls is not None and spec.thinking is None
    assert {"<think>", "</think>"} <= set(spec.lazy_calls.markers)


async def test_a_constraint_applies_to_the_answer_after_the_reasoning(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    fmt = {"type": "json_object"}
    await client.post(CHAT, json=chat_body(response_format=fmt))
    spec = engine.requests[-1].params.structured
    assert spec is not None and spec.json_schema == {"type": "object"}
    assert spec.thinking == ThinkingPrefix("</think>")  # the prompt opened <think>
    await client.post(CHAT, json=chat_body(response_format=fmt, reasoning={"enabled": False}))
    spec = engine.requests[-1].params.structured
    assert spec is not None and spec.thinking == ThinkingPrefix("</think>", "<think>")


async def test_openai_logprobs_cover_every_token_even_those_held_back(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True, logprobs=True))
    entries = [
        entry
        for chunk in sse_json(response.content)
        if chunk["choices"] and chunk["choices"][0]["logprobs"]
        for entry in chunk["choices"][0]["logprobs"]["content"]
    ]
    assert "".join(entry["token"] for entry in entries) == "".join(ANSWER)
