"""Tool calling for chat: what a request's tools mean, and calls as the wire carries them.

With ``tool_choice="auto"`` the model answers calls in its family's format (the chat
template's, or Tether's own tagged form when the template writes none), read back by that
family's parser (``tether.chat.tool_parsers``); with ``"required"`` or a named function the
output is constrained to exactly ``{"name": ..., "arguments": {...}}``
(``StructuredOutput.tool_call``), which Tether's own parser reads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal, Protocol

from tether.api.wire import objects, requests
from tether.chat.call_ids import CallIds
from tether.chat.messages import Function
from tether.chat.output import ChoiceReader
from tether.chat.reasoning import Reasoning
from tether.chat.tool_parsers import make_parser, parser_class
from tether.chat.tool_parsers.base import ParsedCall
from tether.engine import structured
from tether.engine.errors import InvalidRequestError
from tether.engine.structured import LazyCalls, StructuredOutput, ToolFunction

ToolMode = Literal["none", "auto", "forced"]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How one chat request uses its tools: what the template sees, the constraint if a call
    is forced, and the parser that reads calls out of the answer."""

    mode: ToolMode
    functions: tuple[Function, ...]  # for the chat template
    # A forced call's grammar, or (auto) the calls the model may open in its own format.
    structured: StructuredOutput | None
    parser: str | None  # the registry name of the parser reading each choice, if any
    call_ids: CallIds

    @classmethod
    def none(cls, parser: str | None = None, call_ids: CallIds | None = None) -> ToolPlan:
        return cls("none", (), None, parser, call_ids or CallIds())

    @classmethod
    def from_request(
        cls,
        tools: list[requests.Tool] | None,
        choice: requests.ToolChoice | None,
        template: ToolFormat | None = None,
    ) -> ToolPlan:
        """``template`` says which format the model writes calls in (Tether's own when
        None); a format that also carries reasoning is read even without tools."""
        family = template.tool_parser if template is not None else "tether"
        call_ids = template.call_ids if template is not None else CallIds()
        always = family if parser_class(family).reasons else None
        if not tools:
            if choice not in (None, "none", "auto"):
                raise InvalidRequestError("tool_choice: requires tools", param="tool_choice")
            return cls.none(always, call_ids)
        if choice == "none":
            # OpenAI: "none" means the model answers in text; the template gets no tools.
            return cls.none(always, call_ids)
        functions = tuple(tool.to_chat() for tool in tools)
        if choice is None or choice == "auto":
            return cls("auto", functions, opened_calls(family, functions), family, call_ids)
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
        # The grammar writes the bare JSON object that Tether's own form reads.
        structured = StructuredOutput(tool_call=callable_)
        return cls("forced", functions, structured, "tether", call_ids)

    @property
    def markers(self) -> tuple[str, ...]:
        """The parser's markers: the engine keeps them in the text when the model's
        vocabulary has them as special tokens (gpt-oss's, Kimi's, DeepSeek's)."""
        return parser_class(self.parser).markers if self.parser is not None else ()

    def reader(self, reasoning: Reasoning | None) -> ChoiceReader | None:
        """What reads one choice (None: its text is all content)."""
        if self.parser is None:
            return ChoiceReader(reasoning, None) if reasoning is not None else None
        tools = {function.name: function for function in self.functions}
        return ChoiceReader(reasoning, make_parser(self.parser, tools))


def opened_calls(family: str, functions: tuple[Function, ...]) -> StructuredOutput | None:
    """With ``tool_choice: "auto"``, once the model opens a call in its format, the rest of
    the call must be its arguments for that tool's schema, so they always parse (issue 19);
    until then it writes freely. A format with no ``call_format`` is not constrained."""
    parser = parser_class(family)
    found = parser.call_format(functions)
    if found is None:
        return None
    sections = _to_engine(found.sections)
    return StructuredOutput(lazy_calls=LazyCalls(sections, found.at_start, parser.markers))


# The chat layer's call-format types and the engine's, which mirror them field for field.
_ENGINE_TYPES = {
    kind.__name__: kind
    for kind in (
        structured.Pattern,
        structured.BareKeyArguments,
        structured.TaggedParameter,
        structured.TaggedArguments,
        structured.CallShape,
        structured.CallSection,
    )
}


def _to_engine(value: Any) -> Any:
    """A chat call-format value as the engine's type of the same name."""
    if is_dataclass(value) and not isinstance(value, type):
        kind = _ENGINE_TYPES[type(value).__name__]
        return kind(**{f.name: _to_engine(getattr(value, f.name)) for f in fields(value)})
    if isinstance(value, tuple):
        return tuple(_to_engine(item) for item in value)
    return value


class ToolFormat(Protocol):
    """The chat template's side of tool calling (``tether.chat.template.ChatTemplate``)."""

    @property
    def tool_parser(self) -> str: ...

    @property
    def call_ids(self) -> CallIds: ...


def wire_tool_calls(calls: list[ParsedCall], ids: CallIds) -> list[objects.ToolCallObject]:
    """Non-streaming ``message.tool_calls``; a call keeps the id the model gave it."""
    return [objects.tool_call(call.id or ids.new(), call.name, call.arguments) for call in calls]
