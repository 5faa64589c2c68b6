"""``ChoiceReader``: reasoning, content and tool calls out of one streamed choice."""

from __future__ import annotations

from tether.chat.messages import Function
from tether.chat.output import ChoiceReader
from tether.chat.reasoning import Reasoning, ReasoningMarkers
from tether.chat.tool_parsers.base import CallArguments, CallStart, ParsedCall, ReadChoice
from tether.chat.tool_parsers.json_calls import HermesParser, TetherParser

THINK = Reasoning(ReasoningMarkers("<think>", "</think>"), opened=True)
CALL = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
TOOLS = {"f": Function("f")}


def test_plain_text_passes_through_and_counts_no_reasoning() -> None:
    reader = ChoiceReader(None, None)
    assert reader.feed("Hello", 1) == [("content", "Hello")]
    assert reader.finish() == []
    assert reader.reasoning_tokens is None
    assert reader.calls == 0


def test_reasoning_then_a_call_is_reasoning_then_the_call_once_it_closes() -> None:
    reader = ChoiceReader(THINK, TetherParser(TOOLS))
    events = reader.feed("Need f.</think>", 4) + reader.feed(CALL[:20], 5)
    assert events == [("reasoning", "Need f.")]  # the call is held back while it streams
    assert reader.feed(CALL[20:], 5) == [CallStart(0, "f"), CallArguments(0, '{"x":1}')]
    assert reader.finish() == []
    assert reader.reasoning_tokens == 4
    assert reader.calls == 1


def test_held_text_that_is_no_call_comes_out_at_the_end() -> None:
    reader = ChoiceReader(THINK, TetherParser(TOOLS))
    assert reader.feed("Hm</think>{not a call", 3) == [("reasoning", "Hm")]
    assert reader.finish() == [("content", "{not a call")]


def test_a_call_ends_reasoning_even_without_the_end_marker() -> None:
    # Issue 19: some models open their call straight from the reasoning.
    reader = ChoiceReader(THINK, HermesParser(TOOLS))
    read = reader.read([("I should call f.\n", 5), (CALL, 9)])
    assert read == ReadChoice("I should call f.", "", [ParsedCall("f", '{"x":1}')])
    assert reader.reasoning_tokens == 5


def test_a_whole_choice_reads_as_reasoning_content_and_calls() -> None:
    reader = ChoiceReader(THINK, HermesParser(TOOLS))
    read = reader.read([("Plan.</think>", 3), ("Calling f.\n", 3), (CALL, 9)])
    assert read == ReadChoice("Plan.", "Calling f.", [ParsedCall("f", '{"x":1}')])
