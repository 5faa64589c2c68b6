"""JSON calls: Hermes / Qwen 2.5 / Qwen3 / Granite tags, Llama 3.x bare JSON, Tether's form."""

from __future__ import annotations

import pytest

from tests.chat.tool_parsers.roundtrip import (
    CALLS,
    TOOLS,
    as_calls,
    check_stream,
    model_says,
    round_trip,
    splits,
    stream,
    template,
)
from tether.chat.tool_parsers.json_calls import HermesParser, Llama3JsonParser, TetherParser

HERMES_TEMPLATES = [
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen-QwQ-32B",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "ibm-granite-granite-4.0",
]
END = ("<|im_end|>", "<|end_of_text|>", "<|eot_id|>", "<|end|>")


@pytest.mark.parametrize("name", HERMES_TEMPLATES)
def test_hermes_family_round_trips(name: str) -> None:
    said = model_says(template(name), end=END)
    assert said.lstrip().startswith("<tool_call>")
    round_trip(HermesParser, said)


def test_qwen3_round_trips_after_its_empty_thinking() -> None:
    # Qwen3 writes "<think>\n\n</think>\n\n" before an earlier call; the reasoning splitter
    # takes that part, the parser sees what follows.
    said = model_says(template("Qwen-Qwen3-0.6B"), end=END)
    round_trip(HermesParser, said.split("</think>", 1)[1])


@pytest.mark.parametrize(
    "name", ["meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.3-70B-Instruct"]
)
def test_llama3_round_trips(name: str) -> None:
    said = model_says(template(name), CALLS[:1], end=END)  # one call a turn, says Llama 3.1
    assert said.startswith('{"name": "get_weather", "parameters": ')
    round_trip(Llama3JsonParser, said, CALLS[:1])


def test_llama3_python_tag_builtin_call() -> None:
    tools = {**TOOLS, "brave_search": TOOLS["now"]}
    said = '<|python_tag|>brave_search.call(query="weather in Paris")'
    read = Llama3JsonParser(tools).read(said)
    assert as_calls(read) == [("brave_search", {"query": "weather in Paris"})]
    assert read.content == ""


def test_llama3_several_calls_separated_by_semicolons() -> None:
    said = '{"name": "now", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "X"}}'
    assert as_calls(Llama3JsonParser(TOOLS).read(said)) == [
        ("now", {}),
        ("get_weather", {"city": "X"}),
    ]


def test_text_before_a_call_stays_content_and_whitespace_between_calls_is_dropped() -> None:
    said = 'Let me check.\n<tool_call>{"name": "now", "arguments": {}}</tool_call>\n\n'
    said += '<tool_call>{"name": "now", "arguments": {}}</tool_call>\n'
    whole = HermesParser(TOOLS).read(said)
    assert whole.content == "Let me check."
    assert as_calls(whole) == [("now", {}), ("now", {})]
    for pieces in splits(said):
        check_stream(stream(HermesParser(TOOLS), pieces), whole, HermesParser.markers)


@pytest.mark.parametrize(
    "text",
    [
        'Use {"name": "now", "arguments": {}} to get the time.',
        'Here is JSON:\n```json\n{"name": "now", "arguments": {}}\n```',
        '{"name": "now", "arguments": {}, "reason": "a JSON answer, not a call"}',
        '{"name": "send_email", "arguments": {}}',
        '<tool_call>{"name": "send_email", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "now", "arguments": {"x": </tool_call>',
        '<tool_call>{"name": "now", "arguments": [1]}</tool_call>',
        "I like <tool_call> tags.",
        "A < B and <tool",
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(text: str) -> None:
    for make in (HermesParser, TetherParser, Llama3JsonParser):
        whole = make(TOOLS).read(text)
        assert whole.calls == [] and whole.content == text.strip(), make.name
        for pieces in splits(text):
            assert stream(make(TOOLS), pieces) and whole == make(TOOLS).read(text)
            check_stream(stream(make(TOOLS), pieces), whole, ())


def test_tether_form_reads_tags_and_a_bare_forced_call() -> None:
    tagged = '<tool_call>{"name": "now", "arguments": {}}</tool_call>'
    bare = ' {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"} '
    assert as_calls(TetherParser(TOOLS).read(tagged)) == [("now", {})]
    assert as_calls(TetherParser(TOOLS).read(bare)) == [("get_weather", {"city": "Paris"})]


def test_an_unclosed_call_at_the_end_is_still_read() -> None:
    # A stop string or the end-of-turn token can end the answer before the closing tag.
    read = HermesParser(TOOLS).read('<tool_call>\n{"name": "now", "arguments": {}}\n')
    assert as_calls(read) == [("now", {})]


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            [("get_weather", {"city": "Paris"})],
        ),
        (
            '\n <tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Köln"}}</tool_call> ',
            [("now", {}), ("get_weather", {"city": "Köln"})],
        ),
        (
            ' {"name": "get_weather", "arguments": {"city": "Paris"}} ',
            [("get_weather", {"city": "Paris"})],
        ),
        (
            '{"name": "get_weather", "parameters": {"city": "Paris"}}',
            [("get_weather", {"city": "Paris"})],
        ),
    ],
)
def test_tether_form_is_read_whole_and_streamed(text: str, calls: list[object]) -> None:
    whole = TetherParser(TOOLS).read(text)
    assert as_calls(whole) == calls and whole.content == ""
    for pieces in splits(text):
        check_stream(stream(TetherParser(TOOLS), pieces), whole, TetherParser.markers)
