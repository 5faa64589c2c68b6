"""Calls written between special-token markers, with their arguments as JSON text: what the
DeepSeek, Kimi K2 and Mistral formats share.

``block_calls`` reads a section's body made of one block per call
(``<｜tool▁call▁begin｜>…<｜tool▁call▁end｜>``); ``text_call`` reads a function's name and the
JSON text of its arguments into a call (read strictly, ``base.loads_json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from tether.chat.tool_parsers.base import ParsedCall, loads_json
from tether.chat.tool_parsers.json_calls import json_call


def block_calls(
    body: str, begin: str, end: str, read: Callable[[str], ParsedCall | None]
) -> list[ParsedCall] | None:
    """The calls that ``read`` finds in the ``begin…end`` blocks filling ``body`` (apart from
    whitespace around them); None when anything else is there, a block is not closed or
    ``read`` refuses one."""
    calls: list[ParsedCall] = []
    rest = body.strip()
    while rest:
        if not rest.startswith(begin):
            return None
        text, closed, rest = rest[len(begin) :].partition(end)
        call = read(text) if closed else None
        if call is None:
            return None
        calls.append(call)
        rest = rest.lstrip()
    return calls or None


def value_call(
    name: Any, arguments: Any, tools: Mapping[str, Any], id: str | None = None
) -> ParsedCall | None:
    """A call of the known tool ``name`` with ``arguments``: an object, or a JSON string
    holding one (a template that ``tojson``s string arguments writes them that way)."""
    if not isinstance(name, str):
        return None
    if isinstance(arguments, str):
        try:
            arguments = loads_json(arguments)
        except ValueError:
            return None
    call = json_call({"name": name, "arguments": arguments}, tools)
    return call if call is None or id is None else replace(call, id=id)


def text_call(
    name: str, arguments: str, tools: Mapping[str, Any], id: str | None = None
) -> ParsedCall | None:
    """A call of ``name`` whose arguments are the JSON text ``arguments``."""
    try:
        value = loads_json(arguments)
    except ValueError:
        return None
    return value_call(name.strip(), value, tools, id)
