"""Tool calling for chat: what a request's tools mean, and calls as the wire carries them.

With ``tool_choice="auto"`` the prompt asks the model to answer a call in the text format of
``tether.chat.tool_calls``; with ``"required"`` or a named function the output is constrained
to exactly ``{"name": ..., "arguments": {...}}`` (``StructuredOutput.tool_call``). Either way
the finished text goes through ``parse_tool_calls``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from tether.api import requests, responses
from tether.chat.messages import Function
from tether.chat.tool_calls import ParsedCall, ToolCallBuffer, parse_tool_calls
from tether.engine.errors import InvalidRequestError
from tether.engine.structured import StructuredOutput, ToolFunction

ToolMode = Literal["none", "auto", "forced"]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How one chat request uses its tools: what the template sees, and the constraint if a
    call is forced."""

    mode: ToolMode
    names: frozenset[str]
    functions: tuple[Function, ...]  # for the chat template
    structured: StructuredOutput | None  # set when a call is forced

    @classmethod
    def none(cls) -> ToolPlan:
        return cls("none", frozenset(), (), None)

    @classmethod
    def from_request(
        cls, tools: list[requests.Tool] | None, choice: requests.ToolChoice | None
    ) -> ToolPlan:
        if not tools:
            if choice not in (None, "none", "auto"):
                raise InvalidRequestError("tool_choice: requires tools", param="tool_choice")
            return cls.none()
        if choice == "none":
            # OpenAI: "none" means the model answers in text; the template gets no tools.
            return cls.none()
        functions = tuple(tool.to_chat() for tool in tools)
        names = frozenset(function.name for function in functions)
        if choice is None or choice == "auto":
            return cls("auto", names, functions, None)
        forced = None if choice == "required" else choice.function.name
        callable_ = tuple(
            ToolFunction(function.name, function.parameters)
            for function in functions
            if forced is None or function.name == forced
        )
        if not callable_:
            raise InvalidRequestError(
                f"tool_choice: no function named {forced!r}", param="tool_choice"
            )
        return cls("forced", names, functions, StructuredOutput(tool_call=callable_))

    def parse(self, text: str) -> list[ParsedCall] | None:
        """The calls in a finished choice's text, or ``None`` when it is a plain answer."""
        if self.mode == "none":
            return None
        return parse_tool_calls(text, self.names) or None

    def buffer(self) -> ToolCallBuffer | None:
        """What holds a streamed choice's text while it may be a call (None: nothing to hold)."""
        if self.mode == "none":
            return None
        return ToolCallBuffer(self.names, forced=self.mode == "forced")


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def wire_tool_calls(calls: list[ParsedCall]) -> list[responses.ToolCallObject]:
    """Non-streaming ``message.tool_calls``."""
    return [responses.tool_call(new_call_id(), call.name, call.arguments) for call in calls]


def streamed_tool_call_deltas(calls: list[ParsedCall]) -> list[list[dict[str, Any]]]:
    """The ``delta.tool_calls`` lists to stream, in order (wire-contract.md "Chat chunk").

    For each call: a first delta with ``id``, ``type``, ``function.name`` and empty
    ``arguments``, then one carrying the arguments. Every delta carries ``index``.
    """
    deltas: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        deltas.append([responses.tool_call_start(index, new_call_id(), call.name)])
        deltas.append([responses.tool_call_arguments(index, call.arguments)])
    return deltas
