"""Calls written as XML-like tags, one tag per parameter: Qwen3-Coder / Qwen3.5, GLM 4.5-4.7
and MiniMax M2.

These formats write each value as bare text, so the tool's JSON schema decides its type
(``typed``). A section is read by one small grammar per family (``Grammar``): a call's
opening (which names the function), its parameters, and the call's closing tag.

What is read (issue 19):
- every value must be closed by its own closing tag; only the call's closing tag
  (``</function>``, ``</invoke>``) and the section's may be missing at the end of the
  answer, where a stop string or the end-of-turn token can cut them off;
- a function the request did not offer, or markup that does not follow the grammar, makes
  the whole section content (``SectionParser``);
- a value that contains the section's own closing tag (code that writes ``</tool_call>``)
  ends the section early: the call then fails to parse and the section is released as
  content, not lost (vLLM's Qwen3-Coder parser guesses which closer is structural by what
  follows it; that needs a hook in ``SectionParser`` to find the section's end).

A section's calls are released together when its closer arrives: MiniMax's several
``invoke``s could each go out at their ``</invoke>``, but a later broken one must turn the
whole section back into content, and a client runs the calls only once the turn ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import (
    CallFormat,
    CallSection,
    CallShape,
    ParsedCall,
    Pattern,
    Pieces,
    Section,
    SectionParser,
    TaggedArguments,
    TaggedParameter,
    compact,
    loads_json,
)

# Qwen3-Coder's template writes scalars with Jinja's ``| string``, i.e. Python's spelling.
PYTHON_LITERALS: Mapping[str, Any] = {"True": True, "False": False, "None": None}


def schema_types(schema: Any) -> set[str]:
    """The JSON types a property's schema allows: its ``type`` (a name or a list), or its
    ``anyOf`` / ``oneOf`` options' (pydantic writes ``Optional[int]`` that way)."""
    if not isinstance(schema, Mapping):
        return set()
    kind = schema.get("type")
    types = {kind} if isinstance(kind, str) else {t for t in kind or () if isinstance(t, str)}
    for option in [*schema.get("anyOf", ()), *schema.get("oneOf", ())]:
        types |= schema_types(option)
    return types


def fits(value: Any, kind: str) -> bool:
    """``value`` is of JSON Schema type ``kind`` (``3.0`` is an integer, ``True`` is not)."""
    if isinstance(value, bool):
        return kind == "boolean"
    checks: Mapping[str, bool] = {
        "integer": isinstance(value, int) or (isinstance(value, float) and value.is_integer()),
        "number": isinstance(value, int | float),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "null": value is None,
    }
    return checks.get(kind, False)


def typed(text: str, schema: Any) -> Any:
    """A value's text as its schema's type.

    A property that may be a string stays the text exactly, except that ``null`` / ``None``
    is null when the schema also allows null (an optional string left unset). Other types
    are parsed as JSON (or Python's ``True`` / ``False`` / ``None``); text that does not
    parse as one of them stays a string. A parameter the schema does not declare, or
    declares without a type, stays a string too: the text is all the model said, and a
    client can always parse a string, while ``"007"`` or ``"1e3"`` would not survive a
    guess at a number.
    """
    types = schema_types(schema)
    if not types or "string" in types:
        return None if "null" in types and text in ("null", "None") else text
    stripped = text.strip()
    if stripped in PYTHON_LITERALS:
        value = PYTHON_LITERALS[stripped]
    else:
        try:
            value = loads_json(stripped)
        except ValueError:
            return text
    return value if any(fits(value, kind) for kind in types) else text


NEWLINE = Pattern("\n?")


def tagged_arguments(
    tool: Function,
    key_open: Pieces,
    key_close: Pieces,
    value_close: Pieces,
    python_literals: bool = False,
) -> TaggedArguments:
    """How ``tool``'s arguments are written one tag per parameter, each value typed as
    ``typed`` reads it: bare text where the schema allows a string (or says nothing), JSON
    of the property's schema otherwise (``python_literals``: or ``True`` / ``False`` /
    ``None``, as Qwen3-Coder's template writes them)."""
    schema = tool.parameters or {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return TaggedArguments(key_open, key_close, value_close, None)
    required = set(schema.get("required") or ())
    definitions = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
    parameters = []
    for key, property_schema in properties.items():
        types = schema_types(property_schema)
        text = not types or "string" in types
        literals: tuple[str, ...] = ()
        if python_literals:
            literals = tuple(
                spelled
                for spelled, value in PYTHON_LITERALS.items()
                if any(fits(value, kind) for kind in types)
            )
        sub = {**property_schema, **definitions} if isinstance(property_schema, Mapping) else {}
        parameters.append(TaggedParameter(key, sub, key in required, text, literals))
    return TaggedArguments(key_open, key_close, value_close, tuple(parameters))


@dataclass(frozen=True, slots=True)
class Grammar:
    """A family's calls: ``opener`` (group ``name``), parameters (groups ``key`` and
    ``value``), ``closer``; each pattern takes the whitespace after it. ``newlines``: the
    format writes a newline on each side of a value. ``several``: calls in one section."""

    opener: re.Pattern[str]
    parameter: re.Pattern[str]
    closer: re.Pattern[str]
    newlines: bool = False
    several: bool = False


class XmlCallsParser(SectionParser):
    """A section read by the family's ``grammar`` into calls of known tools."""

    grammar: ClassVar[Grammar]

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        calls: list[ParsedCall] = []
        at = 0
        while (read := self._call(body, at)) is not None:
            call, at, closed = read
            calls.append(call)
            if at == len(body):
                return calls
            if not (closed and self.grammar.several):
                break  # more text after a call, where no other call may follow
        return None

    def _call(self, body: str, at: int) -> tuple[ParsedCall, int, bool] | None:
        """The call written at ``at``, where it ends, and whether it was closed; None when
        the text there is not a call of a known tool."""
        opened = self.grammar.opener.match(body, at)
        if opened is None or not self.known(opened["name"]):
            return None
        name, at = opened["name"], opened.end()
        arguments: dict[str, Any] = {}
        while parameter := self.grammar.parameter.match(body, at):
            arguments[parameter["key"]] = self._value(name, parameter["key"], parameter["value"])
            at = parameter.end()
        closed = self.grammar.closer.match(body, at)
        return ParsedCall(name, compact(arguments)), closed.end() if closed else at, bool(closed)

    def _value(self, name: str, key: str, text: str) -> Any:
        if self.grammar.newlines:
            text = text.removeprefix("\n").removesuffix("\n")
        properties = (self.tools[name].parameters or {}).get("properties")
        return typed(text, properties.get(key) if isinstance(properties, Mapping) else None)


class Qwen3CoderParser(XmlCallsParser):
    """Qwen3-Coder, Qwen3.5: one call a section, each value between newlines::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>
    """

    name = "qwen3_coder"
    sections: ClassVar[tuple[Section, ...]] = (Section("<tool_call>", "</tool_call>"),)
    markers = (
        "<tool_call>",
        "</tool_call>",
        "<function=",
        "</function>",
        "<parameter=",
        "</parameter>",
    )
    grammar = Grammar(
        opener=re.compile(r"\s*<function=(?P<name>[^>\n]+)>\s*"),
        parameter=re.compile(r"<parameter=(?P<key>[^>\n]+)>(?P<value>.*?)</parameter>\s*", re.S),
        closer=re.compile(r"</function>\s*"),
        newlines=True,
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        shapes = tuple(
            CallShape(
                (f"\n<function={tool.name}>\n",),
                tool.parameters or {},
                ("</function>\n",),
                tagged_arguments(tool, ("<parameter=",), (">\n",), ("\n</parameter>", "\n"), True),
            )
            for tool in tools
        )
        return CallFormat((CallSection("<tool_call>", shapes, closer=("</tool_call>",)),))


class Glm45Parser(XmlCallsParser):
    """GLM 4.5, 4.6 and 4.7: the name right after the opener, then key and value tags
    (GLM 4.7 writes no newlines between them)::

    <tool_call>get_weather
    <arg_key>city</arg_key>
    <arg_value>Paris</arg_value>
    </tool_call>
    """

    name = "glm45"
    sections: ClassVar[tuple[Section, ...]] = (Section("<tool_call>", "</tool_call>"),)
    markers = (
        "<tool_call>",
        "</tool_call>",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
    )
    grammar = Grammar(
        opener=re.compile(r"\s*(?P<name>[^\s<]+)\s*"),
        parameter=re.compile(
            r"<arg_key>(?P<key>[^<]*)</arg_key>\s*<arg_value>(?P<value>.*?)</arg_value>\s*", re.S
        ),
        closer=re.compile(""),  # the section's closer ends the call
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        # GLM 4.5 and 4.6 write a newline after the name and each tag; 4.7 none.
        layout = (("<arg_key>",), ("</arg_key>", NEWLINE, "<arg_value>"), ("</arg_value>", NEWLINE))
        shapes = tuple(
            CallShape(
                (tool.name, NEWLINE), tool.parameters or {}, (), tagged_arguments(tool, *layout)
            )
            for tool in tools
        )
        return CallFormat((CallSection("<tool_call>", shapes, closer=("</tool_call>",)),))


class MiniMaxM2Parser(XmlCallsParser):
    """MiniMax M2: one section, an ``invoke`` per call::

    <minimax:tool_call>
    <invoke name="get_weather">
    <parameter name="city">Paris</parameter>
    </invoke>
    </minimax:tool_call>

    (MiniMax M3 writes namespaced tags and nests objects as XML: another format.)
    """

    name = "minimax_m2"
    sections: ClassVar[tuple[Section, ...]] = (
        Section("<minimax:tool_call>", "</minimax:tool_call>"),
    )
    markers = (
        "<minimax:tool_call>",
        "</minimax:tool_call>",
        "<invoke name=",
        "</invoke>",
        "<parameter name=",
        "</parameter>",
    )
    grammar = Grammar(
        opener=re.compile(r'\s*<invoke name="(?P<name>[^"]+)">\s*'),
        parameter=re.compile(
            r'<parameter name="(?P<key>[^"]+)">(?P<value>.*?)</parameter>\s*', re.S
        ),
        closer=re.compile(r"</invoke>\s*"),
        several=True,
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        layout = (('<parameter name="',), ('">',), ("</parameter>", NEWLINE))
        shapes = tuple(
            CallShape(
                (f'<invoke name="{tool.name}">', NEWLINE),
                tool.parameters or {},
                ("</invoke>", NEWLINE),
                tagged_arguments(tool, *layout),
            )
            for tool in tools
        )
        section = CallSection(
            "<minimax:tool_call>", shapes, (NEWLINE,), (), ("</minimax:tool_call>",)
        )
        return CallFormat((section,))
