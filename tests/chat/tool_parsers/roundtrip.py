"""The round trip every family's parser is tested by (issue 19; shared/docs/model-formats.md).

A family's own chat template renders an assistant turn that has tool calls (and reasoning);
what it writes after the generation prompt is exactly what the model would say. The parser
must read that text back into the same calls, whole and as a stream split anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether.chat.messages import Function, Message, ToolCall
from tether.chat.template import ChatTemplate
from tether.chat.tool_parsers.base import (
    CallArguments,
    CallStart,
    Event,
    ReadChoice,
    ToolParser,
    collect,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

WEATHER = Function(
    "get_weather",
    "Current weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
        },
        "required": ["city"],
    },
)
NOW = Function("now", "The current time", {"type": "object", "properties": {}})
TOOLS = {tool.name: tool for tool in (WEATHER, NOW)}
QUESTION = Message("user", "What is the weather in Paris and in Köln?")
# Calls whose arguments exercise strings with quotes and non-ASCII text, numbers and booleans.
CALLS = (
    ToolCall("get_weather", {"city": "Paris", "days": 3, "metric": True}, "call00001"),
    ToolCall("get_weather", {"city": 'Köln "am Rhein"'}, "call00002"),
)


def template(name: str, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """The family template ``name`` (a file of tests/chat/templates, without ``.jinja``)."""
    source = (TEMPLATES / f"{name}.jinja").read_text()
    return ChatTemplate(source, bos_token=bos_token, eos_token=eos_token)


def model_says(
    chat: ChatTemplate,
    calls: Sequence[ToolCall] = CALLS,
    *,
    content: str | None = None,
    reasoning: str | None = None,
    end: Sequence[str] = (),
    variables: dict[str, Any] | None = None,
) -> str:
    """What the model writes for an assistant turn with ``calls``: the render of the turn
    past the generation prompt, cut at the first of the family's end-of-turn texts ``end``."""
    turn = Message("assistant", content, tool_calls=tuple(calls), reasoning=reasoning)
    said = chat.said([QUESTION], turn, list(TOOLS.values()), variables)
    cuts = [said.find(marker) for marker in end if marker in said]
    return said[: min(cuts)] if cuts else said


def agent_conversation(result: str = '{"temperature": 18}') -> list[Message]:
    """An agent's second turn: the question, a call with ``content: null``, its result."""
    call = CALLS[0]
    return [
        QUESTION,
        Message("assistant", None, tool_calls=(call,)),
        Message("tool", result, tool_call_id=call.id, name=call.name),
    ]


def expected(calls: Sequence[ToolCall] = CALLS) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, dict(call.arguments)) for call in calls]


def as_calls(read: ReadChoice) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, json.loads(call.arguments)) for call in read.calls]


def stream(parser: ToolParser, pieces: Sequence[str]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.finish()


def splits(text: str) -> list[list[str]]:
    """The text whole, one character at a time, and cut in two at every position."""
    cuts = [[text], list(text)]
    cuts += [[text[:at], text[at:]] for at in range(1, len(text))]
    return cuts


def check_stream(events: Sequence[Event], whole: ReadChoice, markers: Sequence[str]) -> None:
    """A stream's events tell the same answer as the whole read, names before arguments, and
    no marker in content or reasoning."""
    assert collect(events) == whole
    started: set[int] = set()
    for event in events:
        if isinstance(event, CallStart):
            assert event.index == len(started)
            started.add(event.index)
        elif isinstance(event, CallArguments):
            assert event.index in started
    text = "".join(e[1] for e in events if isinstance(e, tuple))
    for marker in markers:
        assert marker not in text, (marker, text)


def round_trip(
    make: type[ToolParser] | Any,
    said: str,
    calls: Sequence[ToolCall] = CALLS,
    *,
    content: str = "",
) -> None:
    """``said`` reads back as ``calls`` (and ``content``), whole and split anywhere."""
    whole = make(TOOLS).read(said)
    assert as_calls(whole) == expected(calls), said
    assert whole.content == content, said
    for pieces in splits(said):
        check_stream(stream(make(TOOLS), pieces), whole, make.markers)
