"""``ChoiceReader``: reasoning, content and tool calls out of one streamed choice."""

from __future__ import annotations

import json

from tether.chat.output import ChoiceReader
from tether.chat.reasoning import Reasoning, ReasoningMarkers
from tether.chat.tool_calls import ToolCallBuffer

THINK = Reasoning(ReasoningMarkers("<think>", "</think>"), opened=True)
CALL = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'


def test_plain_text_passes_through_and_counts_no_reasoning() -> None:
    reader = ChoiceReader(None, None)
    assert reader.feed("Hello", 1) == [("content", "Hello")]
    assert reader.finish() == ([], None)
    assert reader.reasoning_tokens is None


def test_reasoning_then_a_call_is_reasoning_then_the_parsed_call() -> None:
    reader = ChoiceReader(THINK, ToolCallBuffer(frozenset({"f"}), forced=False))
    pieces = reader.feed("Need f.</think>", 4) + reader.feed(CALL[:20], 5)
    pieces += reader.feed(CALL[20:], 5)
    assert pieces == [("reasoning", "Need f.")]  # the call is held back as it streams
    rest, calls = reader.finish()
    assert rest == []
    assert calls is not None and [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("f", {"x": 1})
    ]
    assert reader.reasoning_tokens == 4


def test_held_text_that_is_no_call_comes_out_at_the_end() -> None:
    reader = ChoiceReader(THINK, ToolCallBuffer(frozenset({"f"}), forced=False))
    assert reader.feed("Hm</think>{not a call", 3) == [("reasoning", "Hm")]
    assert reader.finish() == ([("content", "{not a call")], None)
