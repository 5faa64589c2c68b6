"""Gemma 4's ``<|tool_call>call:f{k:<|"|>v<|"|>}<tool_call|>`` calls."""

from __future__ import annotations

from typing import Any

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
from tether.chat.messages import ToolCall
from tether.chat.tool_parsers.base import ReadChoice
from tether.chat.tool_parsers.gemma4 import Gemma4Parser

TEMPLATES = ["google-gemma-4-31B-it", "google-gemma-4-31B-it-interleaved"]
END = ("<turn|>", "<|tool_response>")


def check_splits(text: str) -> ReadChoice:
    """The whole read, after checking that every split of ``text`` streams the same."""
    whole = Gemma4Parser(TOOLS).read(text)
    for pieces in splits(text):
        check_stream(stream(Gemma4Parser(TOOLS), pieces), whole, ())
    return whole


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_templates_calls_round_trip(name: str) -> None:
    said = model_says(template(name), end=END)
    assert said.startswith('<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3,')
    round_trip(Gemma4Parser, said)


def test_the_tool_response_request_that_ends_the_turn_is_dropped() -> None:
    said = model_says(template(TEMPLATES[0]))
    assert said.endswith("<tool_call|><|tool_response>")
    round_trip(Gemma4Parser, said)


@pytest.mark.parametrize("name", TEMPLATES)
def test_content_written_after_the_calls_stays_content(name: str) -> None:
    said = model_says(template(name), CALLS[:1], content="Checking.", end=END)
    assert said.endswith("<tool_call|>Checking.")
    round_trip(Gemma4Parser, said, CALLS[:1], content="Checking.")


ODD_ARGUMENTS: dict[str, Any] = {
    "city": 'a, b} {c: [d]} "e" <|x|>\nf',
    "tags": ["x", 1, -2.5, True, False, None, 1e-07],
    "nested": {"inner": {"flag": False, "list": [[], {}]}, "empty": ""},
    "n": -7,
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_templates_argument_syntax_reads_back(name: str) -> None:
    # format_argument writes nested objects, lists, numbers, booleans and None (as Jinja
    # prints it), and strings with nothing escaped.
    call = ToolCall("get_weather", ODD_ARGUMENTS, "call00003")
    said = model_says(template(name), [call], end=END)
    assert 'tags:[<|"|>x<|"|>,1,-2.5,true,false,None,1e-07]' in said
    round_trip(Gemma4Parser, said, [call])


def test_lenient_spacing_quoted_keys_and_bare_words() -> None:
    said = '<|tool_call>call: get_weather { <|"|>city<|"|> : Paris , days : 3 }<tool_call|>'
    assert as_calls(check_splits(said)) == [("get_weather", {"city": "Paris", "days": 3})]


def test_text_before_and_between_calls() -> None:
    said = "Let me check.\n<|tool_call>call:now{}<tool_call|>\n<|tool_call>call:now{}<tool_call|>"
    whole = check_splits(said)
    assert whole.content == "Let me check."
    assert as_calls(whole) == [("now", {}), ("now", {})]


def test_several_calls_in_one_block_and_an_unclosed_last_call() -> None:
    assert as_calls(check_splits("<|tool_call>call:now{}call:now{}<tool_call|>")) == [
        ("now", {}),
        ("now", {}),
    ]
    # A stop string or the end of the turn can come before the closing marker.
    assert as_calls(check_splits('<|tool_call>call:get_weather{city:<|"|>X<|"|>}')) == [
        ("get_weather", {"city": "X"})
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Use call:now{} to get the time.",
        "I like <|tool_call> tokens.",
        "<|tool_call>call:send_email{}<tool_call|>",
        "<|tool_call>call:now<tool_call|>",
        "<|tool_call>now{}<tool_call|>",
        '<|tool_call>call:get_weather{city:<|"|>Paris}<tool_call|>',
        "<|tool_call>call:get_weather{city:}<tool_call|>",
        "<|tool_call>call:get_weather{:1}<tool_call|>",
        "<|tool_call>call:get_weather{city:1,}<tool_call|>",
        "<|tool_call>call:get_weather{city:[1,2}<tool_call|>",
        "<|tool_call>call:get_weather{days:1e400}<tool_call|>",
        "<|tool_call>call:get_weather{days:" + "9" * 5000 + "}<tool_call|>",
        "<|tool_call>call:now{} and more<tool_call|>",
        "<|tool_call>call:now{x:" + "[" * 500 + "<tool_call|>",
        "<tool_call|>call:now{}<|tool_call>",
        "<|tool_response>imagined result",
        "A < B and <|tool",
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(text: str) -> None:
    assert check_splits(text) == ReadChoice(None, text.strip(), [])
