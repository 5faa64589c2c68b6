"""Tool calling for chat: what a request's tools mean and how a call's text becomes tool_calls.

The convention is shared with the chat template (``tether.engine.chat_template``): with
``tool_choice="auto"`` the prompt asks the model to answer a call as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; with ``"required"`` or a named
function a grammar forces exactly ``{"name": ..., "arguments": {...}}``. Either way the
finished text goes through ``parse_tool_calls``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from tether.api import protocol
from tether.engine import grammar as grammars
from tether.engine.chat_template import (
    TOOL_CALL_OPEN,
    could_be_tool_call_prefix,
    parse_tool_calls,
)
from tether.engine.errors import InvalidRequestError

ToolMode = Literal["none", "auto", "forced"]


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # a JSON string, as the wire carries it


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How one chat request uses its tools: what the template sees, and the grammar if forced."""

    mode: ToolMode
    names: frozenset[str]
    template_tools: list[dict[str, Any]] | None
    grammar: str | None

    @classmethod
    def none(cls) -> ToolPlan:
        return cls("none", frozenset(), None, None)

    @classmethod
    def from_request(
        cls, tools: list[protocol.Tool] | None, choice: protocol.ToolChoice | None
    ) -> ToolPlan:
        if not tools:
            if choice not in (None, "none", "auto"):
                raise InvalidRequestError("tool_choice: requires tools", param="tool_choice")
            return cls.none()
        if choice == "none":
            # OpenAI: "none" means the model answers in text; the template gets no tools.
            return cls.none()
        specs = [tool.for_template() for tool in tools]
        names = frozenset(tool.function.name for tool in tools)
        if choice is None or choice == "auto":
            return cls("auto", names, specs, None)
        forced = None if choice == "required" else choice.function.name
        return cls("forced", names, specs, grammars.tool_call_grammar(specs, forced))

    def parse(self, text: str) -> list[ParsedCall] | None:
        """The calls in a finished choice's text, or ``None`` when it is a plain answer."""
        if self.mode == "none":
            return None
        calls = parse_tool_calls(text, set(self.names))
        if not calls:
            return None
        return [ParsedCall(call["name"], call["arguments"]) for call in calls]


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def wire_tool_calls(calls: list[ParsedCall]) -> list[dict[str, Any]]:
    """Non-streaming ``message.tool_calls``."""
    return [protocol.tool_call(new_call_id(), call.name, call.arguments) for call in calls]


def streamed_tool_call_deltas(calls: list[ParsedCall]) -> list[list[dict[str, Any]]]:
    """The ``delta.tool_calls`` lists to stream, in order (wire-contract.md "Chat chunk").

    For each call: a first delta with ``id``, ``type``, ``function.name`` and empty
    ``arguments``, then one carrying the arguments. Every delta carries ``index``.
    """
    deltas: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        deltas.append([protocol.tool_call_start(index, new_call_id(), call.name)])
        deltas.append([protocol.tool_call_arguments(index, call.arguments)])
    return deltas


class ToolCallBuffer:
    """Holds back one choice's streamed text while it could still be a tool call.

    A call needs its function name before its first delta, so text that begins like a call
    (``<tool_call>`` or ``{``) is held until the choice finishes and parsed whole. Text that
    cannot be a call is released at once. A forced call (grammar) is always held.
    """

    def __init__(self, plan: ToolPlan) -> None:
        self._plan = plan
        self._pieces: list[str] = []
        self._holding = plan.mode != "none"
        self._committed = plan.mode == "forced"

    def feed(self, text: str) -> str:
        """Text to send now ("" while holding)."""
        if not self._holding:
            return text
        self._pieces.append(text)
        if self._committed:
            return ""
        head = "".join(self._pieces).lstrip()
        if not could_be_tool_call_prefix(head):
            return self._release()
        # Past the opening, it stays a possible call: stop re-joining the pieces.
        self._committed = head.startswith(("{", TOOL_CALL_OPEN))
        return ""

    def finish(self) -> tuple[str, list[ParsedCall] | None]:
        """At the choice's end: (held text to send, the parsed calls or None)."""
        if not self._holding:
            return "", None
        calls = self._plan.parse("".join(self._pieces))
        if calls:
            self._pieces.clear()
            return "", calls
        return self._release(), None

    def _release(self) -> str:
        self._holding = False
        text = "".join(self._pieces)
        self._pieces.clear()
        return text
