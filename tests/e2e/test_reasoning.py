"""A reasoning model end to end: the embedded model served with a reasoning chat template
(``examples/gemma-think.jinja``: Gemma's turns, ``<think>`` opened in the generation prompt
as DeepSeek R1's template does) through ``--chat-template``, driven by the SDKs.

The embedded model is a small base model that never closes ``</think>`` on its own. What
makes the closing marker come, deterministically: greedy decoding and two earlier answers in
the history whose reasoning the template writes out (``<think>…</think>`` then the answer).
The model copies that pattern, writing one line of reasoning and ``</think>`` for the third
question, so every split below happens in the model's real output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from together import Together

from tests.conftest import start_server, stop_server
from tests.e2e.conftest import Server
from tests.e2e.test_typescript_sdk import run_script
from tether.config import DEFAULT_MODEL_ID

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "gemma-think.jinja"
HISTORY: list[Any] = [
    {"role": "user", "content": "What is 1+1?"},
    {"role": "assistant", "content": "2", "reasoning": "The user adds one and one."},
    {"role": "user", "content": "What is 3+3?"},
    {"role": "assistant", "content": "6", "reasoning": "The user adds three and three."},
    {"role": "user", "content": "What is 2+2?"},
]
MODEL = DEFAULT_MODEL_ID
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 14}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    proc, running = start_server(
        tmp_path_factory.mktemp("tether-reasoning"), "--chat-template", str(TEMPLATE)
    )
    try:
        yield running
    finally:
        stop_server(proc)


@pytest.fixture
def oai(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def test_together_streams_reasoning_then_content(server: Server) -> None:
    with Together(base_url=server.url, api_key="unused", max_retries=0, timeout=60) as client:
        stream = client.chat.completions.create(
            model=server.model, messages=HISTORY, stream=True, **GREEDY
        )
        chunks = list(stream)
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    reasoning = "".join(d.reasoning or "" for d in deltas if d is not None)
    content = "".join(d.content or "" for d in deltas if d is not None)
    assert reasoning.startswith("The user adds two and two")
    assert content.strip()
    assert "think>" not in reasoning + content
    # Reasoning strictly before content: once content came, no more reasoning.
    kinds = [("r" if d.reasoning else "c") for d in deltas if d and (d.reasoning or d.content)]
    assert kinds == sorted(kinds, key=lambda kind: kind == "c")
    usage = chunks[-1].usage
    assert usage is not None
    details = usage.model_dump()["completion_tokens_details"]
    assert 0 < details["reasoning_tokens"] < usage.completion_tokens


def test_openai_message_has_reasoning_and_usage_counts_it(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model=MODEL, messages=HISTORY, **GREEDY)
    message = completion.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning"].startswith("The user adds two and two")
    assert extra["reasoning_content"] == extra["reasoning"]
    assert message.content and "think>" not in message.content
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert 0 < (usage.completion_tokens_details.reasoning_tokens or 0) < usage.completion_tokens


def test_streamed_and_whole_answers_split_the_same(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model=MODEL, messages=HISTORY, **GREEDY)
    stream = oai.chat.completions.create(model=MODEL, messages=HISTORY, stream=True, **GREEDY)
    deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
    streamed = "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas)
    assert streamed == (whole.choices[0].message.model_extra or {})["reasoning"]
    assert "".join(d.content or "" for d in deltas) == whole.choices[0].message.content


def test_reasoning_off_answers_at_once(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL, messages=HISTORY, extra_body={"reasoning": {"enabled": False}}, **GREEDY
    )
    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning"] is None
    assert message.content
    assert completion.usage is not None and completion.usage.completion_tokens_details
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0


def test_a_stop_string_inside_reasoning_ends_the_answer_there(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL, messages=HISTORY, stop=[" two and"], **GREEDY
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert (choice.message.model_extra or {})["reasoning"] == "The user adds"
    assert not choice.message.content


def test_a_json_schema_constrains_the_answer_not_the_reasoning(oai: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=HISTORY,
        temperature=0,
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}},
    )
    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning"].startswith("The user adds two and two")
    assert isinstance(json.loads(message.content or "")["answer"], int)


def test_the_typescript_sdk_streams_reasoning(server: Server) -> None:
    result = run_script(server, "stream_reasoning.mjs")
    assert result["reasoning"].startswith("The user adds two and two")
    assert result["content"].strip()
    assert result["reasoning_tokens"] > 0
