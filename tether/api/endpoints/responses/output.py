"""``OutputBuilder``: a response's output items and the typed stream events that build them,
from one choice's outputs (a reasoning model's text split as chat does; tool calls read
by the family's parser as chat reads them).
"""

from __future__ import annotations

from typing import Any

from tether.api.endpoints.responses import wire
from tether.api.endpoints.tools import ToolPlan
from tether.chat.output import ChoiceReader
from tether.chat.reasoning import Part, Reasoning
from tether.chat.tool_parsers.base import CallArguments, CallStart, Event
from tether.engine.request import StepOutput


class OutputBuilder:
    """Output items and their events, from one choice's outputs."""

    def __init__(self, plan: ToolPlan, reasoning: Reasoning | None) -> None:
        self.items: list[dict[str, Any]] = []
        self._reader = plan.reader(reasoning) or ChoiceReader(None, None)
        self._call_ids = plan.call_ids
        self._open: dict[str, Any] | None = None  # the item being written

    @property
    def reasoning_tokens(self) -> int:
        return self._reader.reasoning_tokens or 0

    def feed(self, out: StepOutput) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for event in self._reader.feed(out.text, len(out.tokens)):
            self._event(event, events)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Flush what was held (text, or the last calls), close the open item."""
        events: list[dict[str, Any]] = []
        for event in self._reader.finish():
            self._event(event, events)
        self._close(events)
        return events

    def _event(self, event: Event, events: list[dict[str, Any]]) -> None:
        if isinstance(event, CallStart):
            self._call_start(event, events)
        elif isinstance(event, CallArguments):
            self._call_arguments(event.delta, events)
        else:
            self._text(event[0], event[1], events)

    def _text(self, part: Part, text: str, events: list[dict[str, Any]]) -> None:
        kind = "reasoning" if part == "reasoning" else "message"
        if self._open is None or self._open["type"] != kind:
            self._close(events)
            self._start(kind, events)
        item = self._open
        assert item is not None
        item["content"][0]["text"] += text
        events.append(self._text_event(item, "delta", delta=text))

    def _start(self, kind: str, events: list[dict[str, Any]]) -> None:
        if kind == "reasoning":
            item = wire.reasoning_item(wire.new_id("rs"), None, "in_progress")
            part = wire.reasoning_text_part("")
        else:
            item = wire.message_item(wire.new_id("msg"), None, "in_progress")
            part = wire.output_text_part("")
        self.items.append(item)
        self._open = item
        events.append(self._item_event("added", item))
        item["content"].append(part)
        events.append(self._part_event("added", item))

    def _close(self, events: list[dict[str, Any]]) -> None:
        item = self._open
        if item is None:
            return
        self._open = None
        if item["type"] == "function_call":
            self._call_done(item, events)
            return
        events.append(self._text_event(item, "done", text=item["content"][0]["text"]))
        events.append(self._part_event("done", item))
        item["status"] = "completed"
        events.append(self._item_event("done", item))

    # The events of the open item (always the last one, with one content part).

    def _item_event(self, stage: str, item: dict[str, Any]) -> dict[str, Any]:
        index = len(self.items) - 1
        return wire.event(f"response.output_item.{stage}", output_index=index, item=_copy(item))

    def _part_event(self, stage: str, item: dict[str, Any]) -> dict[str, Any]:
        return wire.event(
            f"response.content_part.{stage}",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            content_index=0,
            part=dict(item["content"][0]),
        )

    def _text_event(self, item: dict[str, Any], stage: str, **fields: Any) -> dict[str, Any]:
        """``response.reasoning_text.*`` or ``response.output_text.*`` (which has logprobs)."""
        if item["type"] == "reasoning":
            name = f"response.reasoning_text.{stage}"
        else:
            name, fields = f"response.output_text.{stage}", {**fields, "logprobs": []}
        return wire.event(
            name, item_id=item["id"], output_index=len(self.items) - 1, content_index=0, **fields
        )

    def _call_start(self, call: CallStart, events: list[dict[str, Any]]) -> None:
        self._close(events)
        call_id = call.id or self._call_ids.new()
        item = wire.function_call_item(wire.new_id("fc"), call_id, call.name, "", "in_progress")
        self.items.append(item)
        self._open = item
        events.append(self._item_event("added", item))

    def _call_arguments(self, delta: str, events: list[dict[str, Any]]) -> None:
        item = self._open
        assert item is not None and item["type"] == "function_call"
        item["arguments"] += delta
        events.append(
            wire.event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                delta=delta,
            )
        )

    def _call_done(self, item: dict[str, Any], events: list[dict[str, Any]]) -> None:
        item["status"] = "completed"
        events.append(
            wire.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                name=item["name"],
                arguments=item["arguments"],
            )
        )
        events.append(self._item_event("done", item))


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "content" in copied:
        copied["content"] = [dict(part) for part in copied["content"]]
    return copied
