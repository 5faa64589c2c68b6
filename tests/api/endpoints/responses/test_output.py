"""``OutputBuilder``: output items and their events from a choice's outputs."""

from __future__ import annotations

import json
from typing import Any

from tether.api.endpoints.responses.events import EventLog
from tether.api.endpoints.responses.output import OutputBuilder
from tether.api.endpoints.tools import ToolPlan
from tether.api.wire.requests import Tool
from tether.chat.reasoning import Reasoning, ReasoningMarkers
from tether.engine.request import FinishReason, StepOutput, TokenInfo


def output(text: str, finish: FinishReason | None = None) -> StepOutput:
    tokens = [TokenInfo(ord(c), c, -0.1, False) for c in text]
    return StepOutput("r", 0, tokens, text, finish, 3, len(text), 0, 42)


async def collect(log: EventLog, after: int, older: Any = None) -> list[int]:
    async def no_older(after_seq: int) -> list[dict[str, Any]]:
        raise AssertionError("nothing left memory")

    return [e["sequence_number"] async for e in log.follow(after, older or no_older)]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def test_a_message_is_opened_written_and_closed() -> None:
    builder = OutputBuilder(ToolPlan.none(), None)
    events = builder.feed(output("Hel")) + builder.feed(output("lo", FinishReason.STOP))
    events += builder.finish()
    assert kinds(events) == [
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
    ]
    [item] = builder.items
    assert item["status"] == "completed" and item["content"][0]["text"] == "Hello"
    assert events[0]["item"]["content"] == [] and events[0]["item"]["status"] == "in_progress"
    assert events[-1]["item"]["content"][0]["text"] == "Hello"


def test_reasoning_then_a_message_are_two_items() -> None:
    reasoning = Reasoning(ReasoningMarkers("<think>", "</think>"), opened=True)
    builder = OutputBuilder(ToolPlan.none(), reasoning)
    events = builder.feed(output("Hm.</thi")) + builder.feed(output("nk>Yes"))
    events += builder.finish()
    assert [item["type"] for item in builder.items] == ["reasoning", "message"]
    assert builder.items[0]["content"][0]["text"] == "Hm."
    assert builder.items[1]["content"][0]["text"] == "Yes"
    assert "reasoning_text.delta" in kinds(events) and "output_text.delta" in kinds(events)
    # Counted per output: the one that carried the end marker counts whole.
    assert builder.reasoning_tokens == len("Hm.</thi") + len("nk>Yes")


def test_a_tool_call_becomes_a_function_call_item() -> None:
    tool = Tool.model_validate({"type": "function", "function": {"name": "f", "parameters": {}}})
    builder = OutputBuilder(ToolPlan.from_request([tool], "auto"), None)
    text = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
    events = builder.feed(output(text)) + builder.finish()
    [item] = builder.items
    assert item["type"] == "function_call" and item["name"] == "f"
    assert json.loads(item["arguments"]) == {"x": 1} and item["call_id"].startswith("call_")
    assert kinds(events) == [
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
    ]
