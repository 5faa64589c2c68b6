"""Reading tool calls back from the model's answer: whole, and while it streams."""

from __future__ import annotations

import pytest

from tether.chat.tool_calls import (
    ParsedCall,
    ToolCallBuffer,
    could_be_tool_call_prefix,
    parse_tool_calls,
)

NAMES = frozenset({"get_weather", "now"})


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '\n <tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Köln"}}</tool_call> ',
            [
                {"name": "now", "arguments": "{}"},
                {"name": "get_weather", "arguments": '{"city":"Köln"}'},
            ],
        ),
        (
            ' {"name": "get_weather", "arguments": {"city": "Paris"}} ',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '{"name": "get_weather", "parameters": {"city": "Paris"}}',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
    ],
)
def test_tool_calls_are_parsed(text: str, calls: list[dict[str, str]]) -> None:
    assert parse_tool_calls(text, NAMES) == [ParsedCall(**call) for call in calls]


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        '{"name": "send_email", "arguments": {}}',
        '<tool_call>{"name": "send_email", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {}}',
        '<tool_call>{"name": "now", "arguments": {}}</tool_call> and some more text',
        '{"name": "now", "arguments": [1, 2]}',
        '{"name": "now", "arguments": {}, "reason": "a JSON answer, not a call"}',
        '{"city": "Paris"}',
        "",
    ],
)
def test_text_that_is_not_only_known_calls_is_not_parsed(text: str) -> None:
    assert parse_tool_calls(text, NAMES) is None


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("", True),
        ("  <tool", True),
        ("<tool_call>", True),
        ('<tool_call>{"name"', True),
        ('\n{"na', True),
        ("Hello", False),
        ("<b>bold</b>", False),
        ("<tool_cal!", False),
    ],
)
def test_could_be_tool_call_prefix(text: str, held: bool) -> None:
    assert could_be_tool_call_prefix(text) is held


def test_a_buffer_releases_text_that_cannot_be_a_call() -> None:
    buffer = ToolCallBuffer(NAMES, forced=False)
    assert buffer.feed(" ") == ""
    assert buffer.feed("The weather") == " The weather"
    assert buffer.feed(" is fine.") == " is fine."
    assert buffer.finish() == ("", None)


def test_a_buffer_holds_a_call_until_the_end_and_parses_it() -> None:
    buffer = ToolCallBuffer(NAMES, forced=False)
    for piece in ["<tool_", 'call>{"name": "now", ', '"arguments": {}}</tool_call>']:
        assert buffer.feed(piece) == ""
    assert buffer.finish() == ("", [ParsedCall("now", "{}")])


def test_a_forced_buffer_that_is_no_call_releases_it_all_at_the_end() -> None:
    buffer = ToolCallBuffer(NAMES, forced=True)
    assert buffer.feed("plain") == ""
    assert buffer.finish() == ("plain", None)
