"""Kimi K2: ``<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{…}`` blocks,
the id kept."""

from __future__ import annotations

import pytest

from tests.chat.tool_parsers.roundtrip import (
    TOOLS,
    as_calls,
    check_stream,
    model_says,
    round_trip,
    splits,
    stream,
    template,
)
from tether.chat.tool_parsers.kimi import KimiK2Parser

END = ("<|im_end|>",)
BEGIN, CLOSE = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
IDS = ["functions.get_weather:0", "functions.get_weather:1"]


def block(call_id: str, arguments: str) -> str:
    return f"<|tool_call_begin|>{call_id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>"


@pytest.mark.parametrize("name", ["moonshotai-Kimi-K2", "Kimi-K2-Instruct"])
def test_kimi_k2_round_trips_and_keeps_its_ids(name: str) -> None:
    said = model_says(template(name), end=END)
    assert said.startswith(BEGIN)
    round_trip(KimiK2Parser, said)
    assert [call.id for call in KimiK2Parser(TOOLS).read(said).calls] == IDS


def test_kimi_k2_thinking_round_trips_after_its_empty_thinking() -> None:
    # K2 Thinking writes "<think></think>" before an earlier call; the reasoning splitter
    # takes that part, the parser sees what follows.
    said = model_says(template("Kimi-K2-Thinking"), end=END)
    said = said.split("</think>", 1)[1]
    round_trip(KimiK2Parser, said)
    assert [call.id for call in KimiK2Parser(TOOLS).read(said).calls] == IDS


def test_content_before_the_section_stays_and_ids_count_across_turns() -> None:
    # K2-Instruct's template numbers calls across the whole conversation, not per turn.
    said = f"Checking.{BEGIN}{block(' functions.now:7 ', ' {} ')}{CLOSE}"
    whole = KimiK2Parser(TOOLS).read(said)
    assert whole.content == "Checking."
    assert [(call.name, call.arguments, call.id) for call in whole.calls] == [
        ("now", "{}", "functions.now:7")
    ]
    for pieces in splits(said):
        check_stream(stream(KimiK2Parser(TOOLS), pieces), whole, KimiK2Parser.markers)


def test_the_singular_section_markers_some_checkpoints_write() -> None:
    said = f"<|tool_call_section_begin|>{block('functions.now:0', '{}')}<|tool_call_section_end|>"
    assert as_calls(KimiK2Parser(TOOLS).read(said)) == [("now", {})]


def test_arguments_written_as_a_json_string_are_read() -> None:
    said = BEGIN + block("functions.get_weather:0", '"{\\"city\\": \\"X\\"}"') + CLOSE
    assert as_calls(KimiK2Parser(TOOLS).read(said)) == [("get_weather", {"city": "X"})]


@pytest.mark.parametrize(
    "text",
    [
        BEGIN + block("functions.send_email:0", "{}") + CLOSE,
        BEGIN + block("functions.now", "{}") + CLOSE,  # no index
        BEGIN + block("functions.now:x", "{}") + CLOSE,
        BEGIN + block("functions.now:0", '{"x": ') + CLOSE,
        BEGIN + block("functions.now:0", '"not an object"') + CLOSE,
        BEGIN + block("functions.now:0", "{}").replace("<|tool_call_argument_begin|>", "") + CLOSE,
        BEGIN + block("functions.now:0", "{}").replace("<|tool_call_end|>", "") + CLOSE,
        BEGIN + "I will call now." + block("functions.now:0", "{}") + CLOSE,
        BEGIN + CLOSE,
        f"Kimi opens its calls with {BEGIN}, then one block a call.",
        "Kimi's markers look like <|tool_calls",
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(text: str) -> None:
    whole = KimiK2Parser(TOOLS).read(text)
    assert whole.calls == [] and whole.content == text.strip()
    for pieces in splits(text):
        check_stream(stream(KimiK2Parser(TOOLS), pieces), whole, ())
