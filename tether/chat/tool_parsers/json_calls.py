"""Calls written as JSON objects: Hermes / Qwen 2.5 / Qwen3 / Granite tags, Llama 3.x's bare
JSON (``parameters`` instead of ``arguments``) and ``<|python_tag|>`` built-ins, and Tether's
own form for templates that do not render tools (tags, or a bare object as a forced call
writes it).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import (
    CallFormat,
    CallSection,
    CallShape,
    ParsedCall,
    Section,
    SectionParser,
    compact,
    decode_json,
    loads_json,
)

TOOL_CALL = Section("<tool_call>", "</tool_call>")
BARE_JSON = Section("{", at_start=True)
PYTHON_TAG = Section("<|python_tag|>")


def json_call(value: Any, tools: Mapping[str, Any]) -> ParsedCall | None:
    """``{"name": …, "arguments"|"parameters": {…}}`` naming a known tool, as a call."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if value["name"] not in tools:
        return None
    if not set(value) <= {"name", "arguments", "parameters"}:
        return None  # a JSON answer that happens to have a "name", not a call
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = loads_json(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(value["name"], compact(arguments))


def json_calls(
    text: str, tools: Mapping[str, Any], separators: str = ""
) -> list[ParsedCall] | None:
    """One or more JSON calls filling ``text``, apart from whitespace and ``separators``."""
    calls: list[ParsedCall] = []
    position, end = 0, len(text)
    while True:
        while position < end and (text[position].isspace() or text[position] in separators):
            position += 1
        if position == end:
            return calls or None
        try:
            value, position = decode_json(text, position)
        except ValueError:
            return None
        call = json_call(value, tools)
        if call is None:
            return None
        calls.append(call)


class HermesParser(SectionParser):
    """``<tool_call>\\n{"name": "f", "arguments": {…}}\\n</tool_call>``, one call a block."""

    name = "hermes"
    sections: ClassVar[tuple[Section, ...]] = (TOOL_CALL,)
    markers = ("<tool_call>", "</tool_call>")
    # How the family writes a call (Qwen's and Hermes's templates render it so).
    layout: ClassVar[tuple[str, str, str]] = (
        '<tool_call>\n{"name": ',
        ', "arguments": ',
        "}\n</tool_call>",
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        return _call_format(cls.layout, tools, "<tool_call>")

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        return json_calls(body, self.tools)


class TetherParser(HermesParser):
    """Tether's own form, for templates that do not render tools: Hermes blocks, or the
    whole answer being one JSON call (what a forced call's grammar writes)."""

    name = "tether"
    sections = (TOOL_CALL, BARE_JSON)
    # As the plain form writes earlier calls (``tether.chat.tool_calls``).
    layout = ('<tool_call>{"name": ', ', "arguments": ', "}</tool_call>")

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        if section is BARE_JSON:
            return json_calls(section.opener + body, self.tools)
        return json_calls(body, self.tools)


class Llama3JsonParser(SectionParser):
    """Llama 3.1 / 3.2 / 3.3: the whole answer is ``{"name": "f", "parameters": {…}}`` (several
    separated by ``;``), or ``<|python_tag|>`` then JSON or a built-in's
    ``brave_search.call(query="…")``."""

    name = "llama3_json"
    sections = (BARE_JSON, PYTHON_TAG)
    markers = ("<|python_tag|>",)

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        layout = ('{"name": ', ', "parameters": ', "}")
        return _call_format(layout, tools, "{", at_start=True)

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        if section is BARE_JSON:
            return json_calls(section.opener + body, self.tools, separators=";")
        return json_calls(body, self.tools, separators=";") or self._builtin(body)

    def _builtin(self, body: str) -> list[ParsedCall] | None:
        """``tool.call(k=v, …)``, the form Llama 3.1 uses for its built-in tools."""
        try:
            node = ast.parse(body.strip(), mode="eval").body
        except SyntaxError:
            return None
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "call"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in self.tools
            and not node.args
        ):
            return None
        try:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            return None
        return [ParsedCall(node.func.value.id, compact(arguments))]


def _call_format(
    layout: tuple[str, str, str],
    tools: Sequence[Function],
    trigger: str,
    at_start: bool = False,
) -> CallFormat:
    """Each tool's call as ``open name middle <arguments> close`` (``layout``, whose
    ``open`` starts with the ``trigger``), one call a section."""
    opening, middle, close = layout
    opening = opening.removeprefix(trigger)
    shapes = tuple(
        CallShape(
            (f"{opening}{json.dumps(tool.name, ensure_ascii=False)}{middle}",),
            dict(tool.parameters or {"type": "object"}),
            (close,),
        )
        for tool in tools
    )
    return CallFormat((CallSection(trigger, shapes),), at_start)
