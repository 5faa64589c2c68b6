"""Real model families' own formats end to end (issue 19): the embedded model served under a
family's own chat template (``--chat-template``, from llama.cpp's ``models/templates/``),
driven through an agent's loop by the ``openai`` and ``together`` SDKs.

What makes the small base model answer in a family's format, deterministically: greedy
decoding and two earlier rounds in the history (question, call with ``content: null``, result,
answer) that the template itself writes out in that format. The model copies the pattern for
the third question, so each parse below reads the model's real output. The family's
end-of-turn text is a stop string, since the embedded vocabulary lacks that family's end token.
Calls the model opens are held to the tools' schemas (on vLLM too, for Qwen3-Coder's XML).
Families whose markers the embedded vocabulary cannot spell (DeepSeek's ``▁``, harmony's
special tokens) or that the small model does not copy (Mistral, Kimi, MiniMax) are checked
by their templates' round trips in ``tests/chat/tool_parsers``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from together import Together

from tests.conftest import start_server, stop_server, vllm_available
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

TEMPLATES = Path(__file__).resolve().parents[1] / "chat" / "templates"
# family: (template, end-of-turn stop strings, the parser /v1/models names)
FAMILIES: dict[str, tuple[str, list[str], str]] = {
    "qwen3": ("Qwen-Qwen3-0.6B", ["<|im_end|>"], "hermes"),
    "qwen3_coder": ("Qwen3-Coder", ["<|im_end|>"], "qwen3_coder"),
    "glm45": ("GLM-4.6", ["<|user|>", "<|observation|>"], "glm45"),
    "llama3": ("meta-llama-Llama-3.3-70B-Instruct", ["<|eot_id|>", "<|eom_id|>"], "llama3_json"),
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ROME = {"city": "Rome"}


def called(call_id: str, city: str) -> dict[str, Any]:
    """An assistant turn that only called a tool, as the SDKs send it back."""
    arguments = json.dumps({"city": city})
    function = {"name": "get_weather", "arguments": arguments}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    called("call_a1", "Paris"),
    {"role": "tool", "tool_call_id": "call_a1", "content": "18C"},
    {"role": "assistant", "content": "It is 18C in Paris."},
    {"role": "user", "content": "Weather in Berlin?"},
    called("call_b2", "Berlin"),
    {"role": "tool", "tool_call_id": "call_b2", "content": "12C"},
    {"role": "assistant", "content": "It is 12C in Berlin."},
    {"role": "user", "content": "Weather in Rome?"},
]


class Family:
    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        template, self.stop, self.parser = FAMILIES[name]
        self.markers = markup_of(template)

    def body(self, messages: list[dict[str, Any]] = HISTORY) -> dict[str, Any]:
        return {
            "model": self.server.model,
            "messages": messages,
            "tools": [WEATHER],
            "temperature": 0,
            "max_tokens": 60,
            "stop": self.stop,
        }


def markup_of(template: str) -> list[str]:
    """The call markup a family writes, which must never reach content."""
    source = (TEMPLATES / f"{template}.jinja").read_text()
    candidates = ["<tool_call>", "</tool_call>", "<function=", "<parameter=", "<arg_key>"]
    return [marker for marker in candidates if marker in source]


def start_family(tmp: Path, name: str, engine: str = "llamacpp") -> tuple[Any, Server]:
    template = TEMPLATES / f"{FAMILIES[name][0]}.jinja"
    return start_server(tmp, "--chat-template", str(template), engine=engine)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Family]:
    proc, server = start_family(tmp_path_factory.mktemp(f"tether-{request.param}"), request.param)
    try:
        yield Family(request.param, server)
    finally:
        stop_server(proc)


@pytest.fixture
def oai(family: Family) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=family.server.v1, api_key="unused", max_retries=0, timeout=120
    ) as client:
        yield client


@pytest.fixture
def tog(family: Family) -> Iterator[Together]:
    with Together(base_url=family.server.url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def test_models_name_the_format_in_force(family: Family) -> None:
    cards = httpx.get(f"{family.server.v1}/models", timeout=30).json()
    assert cards[0]["chat_format"]["tool_call_parser"] == family.parser


def test_openai_reads_the_models_own_call(oai: openai.OpenAI, family: Family) -> None:
    response = oai.chat.completions.create(**family.body())

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", ROME)
    ]


def test_openai_streams_the_name_then_arguments_and_no_markup(
    oai: openai.OpenAI, family: Family
) -> None:
    stream = oai.chat.completions.create(**family.body(), stream=True)
    names, arguments, content, reasons = [], "", "", []
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        content += choice.delta.content or ""
        for call in choice.delta.tool_calls or ():
            if call.function and call.function.name:
                assert not arguments  # the name comes before any argument
                names.append(call.function.name)
            if call.function and call.function.arguments:
                arguments += call.function.arguments
        reasons.append(choice.finish_reason)
    assert names == ["get_weather"]
    assert json.loads(arguments) == ROME
    assert not any(marker in content for marker in family.markers)
    assert reasons[-1] == "tool_calls"


def test_together_reads_the_call_whole_and_streamed(tog: Together, family: Family) -> None:
    whole = tog.chat.completions.create(**family.body())
    calls = whole.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == ROME

    streamed = ""
    for chunk in tog.chat.completions.create(**family.body(), stream=True):
        for choice in chunk.choices or ():
            for call in (choice.delta.tool_calls if choice.delta else None) or ():
                streamed += call.function.arguments or "" if call.function else ""
    assert streamed == calls[0].function.arguments


@pytest.mark.parametrize("sdk", ["openai", "together"])
def test_an_agent_loop_sends_the_call_back_with_content_null(
    sdk: str, oai: openai.OpenAI, tog: Together, family: Family
) -> None:
    # Qwen3's and gpt-oss's templates failed with 400 on content null (issue 19).
    first = oai.chat.completions.create(**family.body())
    call = (first.choices[0].message.tool_calls or [])[0]
    turn = first.choices[0].message.model_dump(exclude_none=True)
    turn["content"] = None  # as the SDKs send a turn that only called tools
    result = {"role": "tool", "tool_call_id": call.id, "content": "20C"}
    body = family.body([*HISTORY, turn, result])

    client: Any = oai if sdk == "openai" else tog
    answer = client.chat.completions.create(**body)

    message = answer.choices[0].message
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert message.content or message.tool_calls


def test_a_call_the_model_opens_gets_the_tools_types(oai: openai.OpenAI, family: Family) -> None:
    # Where the schema allows the word, the model copies it: the integer below is the
    # constraint's doing, not the model's.
    assert calls_for_days(oai, family, {"type": "string"})[0]["days"] == "three"
    check_typed_call(oai, family)


def calls_for_days(
    client: openai.OpenAI, family: Family, days: dict[str, Any]
) -> list[dict[str, Any]]:
    """The arguments of the calls the model makes after a history whose calls wrote the days
    as a word, with a tool whose ``days`` has the schema ``days``."""
    parameters = {**WEATHER["function"]["parameters"], "required": ["city", "days"]}
    parameters["properties"] = {**parameters["properties"], "days": days}
    tool = {"type": "function", "function": {**WEATHER["function"], "parameters": parameters}}
    history = [
        {**turn, "tool_calls": [worded(call) for call in turn["tool_calls"]]}
        if turn.get("tool_calls")
        else turn
        for turn in HISTORY
    ]
    body = {**family.body(history), "tools": [tool], "max_tokens": 100}  # one more parameter
    response = client.chat.completions.create(**body)
    calls = response.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]
    return [json.loads(call.function.arguments) for call in calls]


def check_typed_call(client: openai.OpenAI, family: Family) -> None:
    """The tool wants the days as an integer: a call the model opens is held to the schema,
    though its history wrote a word (issue 19)."""
    [arguments] = calls_for_days(client, family, {"type": "integer", "minimum": 1, "maximum": 16})
    assert isinstance(arguments["days"], int) and 1 <= arguments["days"] <= 16
    assert isinstance(arguments["city"], str)


def worded(call: dict[str, Any]) -> dict[str, Any]:
    arguments = {**json.loads(call["function"]["arguments"]), "days": "three"}
    return {**call, "function": {**call["function"], "arguments": json.dumps(arguments)}}


@pytest.mark.skipif(not vllm_available(), reason="the vLLM engine is not built: `make vllm`")
def test_the_vllm_engine_reads_the_same_format(tmp_path: Path) -> None:
    proc, server = start_family(tmp_path, "qwen3", engine="vllm")
    try:
        with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300) as c:
            family = Family("qwen3", server)
            response = c.chat.completions.create(**family.body())
            streamed = c.chat.completions.create(**family.body(), stream=True)
            arguments = "".join(
                call.function.arguments or ""
                for chunk in streamed
                for choice in chunk.choices
                for call in choice.delta.tool_calls or ()
                if call.function
            )
    finally:
        stop_server(proc)
    calls = response.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", ROME)
    ]
    assert json.loads(arguments) == ROME


@pytest.mark.skipif(not vllm_available(), reason="the vLLM engine is not built: `make vllm`")
def test_the_vllm_engine_holds_an_xml_call_to_the_tools_types(tmp_path: Path) -> None:
    proc, server = start_family(tmp_path, "qwen3_coder", engine="vllm")
    try:
        with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300) as c:
            check_typed_call(c, Family("qwen3_coder", server))
    finally:
        stop_server(proc)


# Every family's template takes an agent's second turn, whatever the small model then says:
# the call sent back with content null (as both SDKs send it) and the tool's result.
AGENT_TEMPLATES = {  # template: the parser it is read with
    "Qwen-Qwen2.5-7B-Instruct": "hermes",
    "Qwen-Qwen3-0.6B": "hermes",
    "Qwen3-Coder": "qwen3_coder",
    "meta-llama-Llama-3.3-70B-Instruct": "llama3_json",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "deepseek_v3",
    "deepseek-ai-DeepSeek-V3.1": "deepseek_v31",
    "openai-gpt-oss-120b": "openai",
    "Mistral-Small-3.2-24B-Instruct-2506": "mistral",
    "Kimi-K2-Thinking": "kimi_k2",
    "GLM-4.6": "glm45",
    "MiniMax-M2": "minimax_m2",
    "google-gemma-4-31B-it": "gemma4",
}


@pytest.mark.parametrize(("name", "parser"), AGENT_TEMPLATES.items())
def test_every_familys_template_takes_an_agents_second_turn(
    name: str, parser: str, tmp_path: Path
) -> None:
    proc, server = start_server(tmp_path, "--chat-template", str(TEMPLATES / f"{name}.jinja"))
    try:
        cards = httpx.get(f"{server.v1}/models", timeout=30).json()
        assert cards[0]["chat_format"]["tool_call_parser"] == parser
        body = {
            "model": server.model,
            "messages": HISTORY[:3],  # the question, the call with content null, its result
            "tools": [WEATHER],
            "max_tokens": 4,
            "temperature": 0,
        }
        with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=60) as o:
            assert o.chat.completions.create(**body).choices[0].message is not None
        with Together(base_url=server.url, api_key="unused", max_retries=0, timeout=60) as t:
            assert t.chat.completions.create(**body).choices[0].message is not None
    finally:
        stop_server(proc)
