"""Mistral's calls (Mistral 7B v0.3, Nemo, Small 3.x, Devstral, Ministral 3, Magistral):
``[TOOL_CALLS]`` then, by tokenizer version, one of

- ``[{"name": …, "arguments": {…}, "id": …}, …]`` (Nemo's template adds the ``id``);
- ``NAME{…}``;
- ``NAME[CALL_ID]ID[ARGS]{…}`` (Mistral Small 3.2);
- ``NAME[ARGS]{…}`` (Devstral, Ministral 3);

and several ``[TOOL_CALLS]`` in a row are several calls. Nothing closes the calls: they run to
the end of the answer (the model's end token ends it), so they are read when it ends.

A call's id is kept when it is one that Mistral's templates accept back in the next turn
(9 alphanumerics); otherwise the server gives the call one (``tether.chat.call_ids``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import (
    CallFormat,
    CallSection,
    CallShape,
    ParsedCall,
    Pattern,
    Section,
    SectionParser,
    loads_json,
)
from tether.chat.tool_parsers.blocks import text_call, value_call

TOOL_CALLS = "[TOOL_CALLS]"
CALL_ID = "[CALL_ID]"
ARGS = "[ARGS]"

# A call after [TOOL_CALLS]: the name runs up to its markers or its arguments' "{".
NAMED = re.compile(
    r"\s*(?P<name>[^\s\[{]+)(?:\[CALL_ID\](?P<id>[^\[]*)\[ARGS\]|\[ARGS\])?(?P<arguments>.*)",
    re.S,
)
NINE = re.compile(r"[A-Za-z0-9]{9}")
LISTED_KEYS = frozenset({"name", "arguments", "id"})


class MistralParser(SectionParser):
    name = "mistral"
    sections = (Section(TOOL_CALLS),)
    markers = (TOOL_CALLS, CALL_ID, ARGS)

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        """Every variant the parser reads: the model's tokenizer version decides which one
        it writes."""
        nine = Pattern("[A-Za-z0-9]{9}")
        named = tuple(
            CallShape(begin, tool.parameters or {})
            for tool in tools
            for begin in (
                (tool.name,),
                (f"{tool.name}{ARGS}",),
                (f"{tool.name}{CALL_ID}", nine, ARGS),
            )
        )
        listed = tuple(
            CallShape(
                (f'{{"name": {json.dumps(tool.name)}, "arguments": ',), tool.parameters or {}, end
            )
            for tool in tools
            for end in (("}",), (', "id": "', nine, '"}'))
        )
        return CallFormat(
            (
                CallSection(TOOL_CALLS, named),
                CallSection(TOOL_CALLS, listed, ("[",), (", ",), ("]",)),
            )
        )

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        calls: list[ParsedCall] = []
        for chunk in body.split(TOOL_CALLS):
            listed = chunk.lstrip().startswith("[")
            found = self._listed(chunk) if listed else self._named(chunk)
            if found is None:
                return None
            calls += found
        return calls

    def _named(self, chunk: str) -> list[ParsedCall] | None:
        """``NAME{…}``, ``NAME[ARGS]{…}`` or ``NAME[CALL_ID]ID[ARGS]{…}``."""
        found = NAMED.fullmatch(chunk)
        if found is None:
            return None
        call = text_call(found["name"], found["arguments"], self.tools, _kept_id(found["id"]))
        return None if call is None else [call]

    def _listed(self, chunk: str) -> list[ParsedCall] | None:
        """``[{"name": …, "arguments": {…}}, …]``, each object possibly with its ``id``."""
        try:
            items = loads_json(chunk)
        except ValueError:
            return None
        if not isinstance(items, list) or not items:
            return None
        calls: list[ParsedCall] = []
        for item in items:
            if not isinstance(item, dict) or not set(item) <= LISTED_KEYS:
                return None  # a JSON list that is not calls
            call = value_call(
                item.get("name"), item.get("arguments", {}), self.tools, _kept_id(item.get("id"))
            )
            if call is None:
                return None
            calls.append(call)
        return calls


def _kept_id(value: Any) -> str | None:
    return value if isinstance(value, str) and NINE.fullmatch(value) else None
