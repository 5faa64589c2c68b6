"""The grammar of the calls a model opens in its own format (issue 19, part 5), as rules of
the Lark grammar ``tether.engine.guidance`` writes.

Free text until a trigger (a lazy lexeme: the text ends at the trigger's first occurrence;
a special-token trigger needs none, since text never holds a special token), then the
section it opens (``CallSection``: opener, one call or several with a separator, closer),
then free text again. A call is its markup around the arguments: JSON of the tool's schema
(``%json``), one tag per parameter (``TaggedArguments``: Qwen3-Coder, GLM, MiniMax), or
Gemma 4's bare-key notation (``BareKeyArguments``). The free text may hold the format's
markers that the vocabulary has as special tokens (gpt-oss writes its whole answer in
them), the triggers excepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tether.engine.errors import StructuredOutputError
from tether.engine.structured import (
    ANY_OBJECT,
    CallSection,
    CallShape,
    LazyCalls,
    Pattern,
    Pieces,
    TaggedArguments,
)

Markup = Callable[[str], str]
"""A literal of the model's markup as a Lark expression."""


class Writer(Protocol):
    """Where rules go: the grammar being written (``guidance._Lark``)."""

    def markup(self, text: str) -> str: ...

    def rule(self, name: str, body: str, lazy: bool = False) -> str: ...

    def schema(self, schema: Mapping[str, Any]) -> str: ...


def join(*parts: str) -> str:
    """Lark expressions in sequence (empty ones left out)."""
    return " ".join(part for part in parts if part)


class CallGrammar:
    """Writes ``LazyCalls`` as rules of ``writer``'s grammar."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._text_rules: dict[str, str] = {}  # a closing tag → the rule of text up to it
        self._numbers = 0

    def next_number(self) -> int:
        """A number for rule names no other part of the grammar uses."""
        self._numbers += 1
        return self._numbers

    def lazy_calls(self, spec: LazyCalls) -> str:
        """Free text in which a trigger opens a section of calls, constrained to the section's
        shapes; then free text again (llguidance's lazy lexemes: the text ends at the
        trigger's first occurrence; a special-token trigger needs none, since text never
        contains one)."""
        heads, triggers = [], []  # triggers: as Lark expressions
        for index, trigger in enumerate(spec.triggers):
            sections = [s for s in spec.sections if s.trigger == trigger]
            body = self.writer.rule(
                f"call_{index}_body",
                " | ".join(self._section(f"call_{index}_{n}", s) for n, s in enumerate(sections)),
            )
            opener = self.writer.markup(trigger)
            triggers.append(opener)
            if spec.at_start:
                head = self.writer.rule(f"call_{index}_head", f"/[ \\t\\n]*/ {opener}")
            else:
                head = self.writer.rule(f"call_{index}_head", f"TEXT {opener}", is_text(opener))
            heads.append(f"{head} {body}")
        calls = " | ".join(heads)
        # Free text is text and the markers that are special tokens (text never holds one);
        # a trigger that is a special token may only open its section.
        specials = [
            expression
            for marker in dict.fromkeys(spec.markers)
            if _is_special(expression := self.writer.markup(marker)) and expression not in triggers
        ]
        special = f"({' | '.join(specials)})" if specials else ""
        if spec.at_start:
            # The call must be the first thing written; anything else is free text.
            starts = "|".join(re.escape(trigger) for trigger in spec.triggers)
            free = self.writer.rule(
                "FREE", f"/(.|\\n)*/ & ~/[ \\t\\n]*({slashes(starts)})(.|\\n)*/"
            )
            after = f"(TEXT {special})* TEXT" if special else "TEXT"
            first = self.writer.rule("calls", f"({calls})+ {after}")
            rest = f" ({special} TEXT)*" if special else ""
            return self.writer.rule("answer", f"{first} | {free}{rest}")
        pieces = f"{calls} | TEXT {special}" if special else calls
        return self.writer.rule("answer", f"({pieces})* TEXT")

    def _section(self, name: str, section: CallSection) -> str:
        call = self.writer.rule(f"{name}_call", " | ".join(self._call(s) for s in section.shapes))
        calls = call
        if section.separator is not None:
            calls = f"{call} ({self._pieces(section.separator)} {call})*"
        return join(self._pieces(section.opener), calls, self._pieces(section.closer))

    def _call(self, shape: CallShape) -> str:
        if shape.tagged is not None:
            arguments = self._tagged(shape.tagged)
        elif shape.bare_keys is not None:
            arguments = _BareKeys(self, shape.bare_keys.quote, shape.parameters).value()
        else:
            arguments = self.writer.schema(shape.parameters or ANY_OBJECT)
        return join(self._pieces(shape.begin), arguments, self._pieces(shape.end))

    def _tagged(self, tagged: TaggedArguments) -> str:
        """One tag per parameter, in the schema's order, the optional ones optional."""
        key_open, key_close = self._pieces(tagged.key_open), self._pieces(tagged.key_close)
        if tagged.parameters is None:
            any_key = '/[^<>"\\n]+/'
            value = self.text_value(tagged.value_close)
            return f"({join(key_open, any_key, key_close, value)})*"
        items = []
        for parameter in tagged.parameters:
            if parameter.text:
                value = self.text_value(tagged.value_close, parameter.schema)
            else:
                options = [self.writer.schema(parameter.schema)]
                options += [json.dumps(literal) for literal in parameter.literals]
                value = join(f"({' | '.join(options)})", self._pieces(tagged.value_close))
            item = join(key_open, json.dumps(parameter.key), key_close, value)
            items.append(item if parameter.required else f"({item})?")
        return join(*items)

    def text_value(self, close: Pieces, schema: Mapping[str, Any] | None = None) -> str:
        """A value written as bare text up to its closing tag (``close[0]``): one of the
        schema's strings when it lists them, else any text without the closing tag."""
        tag, rest = close[0], self._pieces(close[1:])
        assert isinstance(tag, str) and tag, "a value's closing tag is markup"
        strings = _listed_strings(schema)
        if strings is not None:
            listed = " | ".join(json.dumps(text) for text in strings)
            return join(f"({listed})", self.writer.markup(tag), rest)
        closing = self.writer.markup(tag)
        name = self._text_rules.get(closing)
        if name is None:
            name = f"text_{len(self._text_rules)}"
            self._text_rules[closing] = name
            if "<[" not in closing:  # all text: the value ends at the tag's first occurrence
                self.writer.rule(name, f"TEXT {closing}", lazy=True)
            elif (found := _LEADING_TEXT.fullmatch(closing)) is not None:
                # Text, then special tokens: the value runs up to the text before the first
                # one (text never holds a special token, so it cannot run past it).
                before = _regex_text(json.loads(found["text"]))
                self.writer.rule(name, f"/(.|\\n)*{before}/ {found['rest']}")
            else:
                self.writer.rule(name, f"TEXT {closing}")
        return join(name, rest)

    def _pieces(self, pieces: Pieces) -> str:
        return join(
            *(
                f"/{slashes(piece.regex)}/" if isinstance(piece, Pattern) else self._literal(piece)
                for piece in pieces
            )
        )

    def _literal(self, text: str) -> str:
        return self.writer.markup(text) if text else ""


class _BareKeys:
    """A schema as a grammar of ``BareKeyArguments``' notation: objects with their properties
    in sorted order (the required ones required), arrays of the items' schema, strings between
    quote marks (one of the listed ones, if the schema lists them), numbers as JSON within the
    schema's bounds, ``true`` / ``false``, ``None``. A ``$ref`` into the schema's own
    ``$defs`` is a rule of its own (so it may recurse); other string keywords are advisory."""

    _NUMERIC = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")

    def __init__(self, calls: CallGrammar, quote: str, root: Mapping[str, Any]) -> None:
        self.writer = calls.writer
        self._quote = self.writer.markup(quote)
        self._string = calls.text_value((quote,))
        self._root = root
        self._refs: dict[str, str] = {}
        self._prefix = f"bare_{calls.next_number()}"

    def value(self, schema: Any = None) -> str:
        schema = self._root if schema is None else schema
        if schema is True or schema == {}:
            return self._any()
        if not isinstance(schema, Mapping):
            raise StructuredOutputError("a JSON schema must be an object")
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._ref(ref)
        listed = [schema["const"]] if "const" in schema else schema.get("enum")
        if isinstance(listed, list) and listed:
            return "(" + " | ".join(self._literal(item) for item in listed) + ")"
        options = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
        if options:
            return "(" + " | ".join(self.value(option) for option in options) + ")"
        kind = schema.get("type")
        kinds = [kind] if isinstance(kind, str) else list(kind or [])
        if not kinds:
            return self._any()
        return "(" + " | ".join(self._typed(name, schema) for name in kinds) + ")"

    def _typed(self, kind: str, schema: Mapping[str, Any]) -> str:
        if kind == "string":
            return f"{self._quote} {self._string}"
        if kind in ("integer", "number"):
            numeric = {key: schema[key] for key in self._NUMERIC if key in schema}
            return self.writer.schema({**numeric, "type": kind})
        if kind == "boolean":
            return '"true" | "false"'
        if kind == "null":
            return '"None"'
        if kind == "array":
            item = self.value(schema.get("items", {}))
            return f'"[" ({item} ("," {item})*)? "]"'
        if kind == "object":
            return self._object(schema)
        raise StructuredOutputError(f"unknown JSON type {kind!r}")

    def _object(self, schema: Mapping[str, Any]) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            return self._any_object()
        required = set(schema.get("required") or ())
        items = [
            (f'{json.dumps(key)} ":" {self.value(sub)}', key in required)
            for key, sub in sorted(properties.items())
        ]
        # The first item written has no comma before it, every later one has one; the
        # optional ones may be left out.
        head = ""
        for index in reversed(range(len(items))):
            item, needed = items[index]
            tail = ""
            for later, later_needed in items[index + 1 :]:
                tail += f' "," {later}' if later_needed else f' ("," {later})?'
            first = f"{item}{tail}"
            head = first if needed else (f"({first} | {head})" if head else f"({first})?")
        return f'"{{" {head} "}}"'

    def _ref(self, ref: str) -> str:
        name = self._refs.get(ref)
        if name is None:
            parts = ref.removeprefix("#/").split("/") if ref.startswith("#/") else None
            target: Any = self._root
            for part in parts or ["?"]:
                target = target.get(part) if isinstance(target, Mapping) else None
            if parts is None or target is None:
                raise StructuredOutputError(f"$ref {ref!r} cannot be followed in this format")
            name = self._refs[ref] = f"{self._prefix}_ref_{len(self._refs)}"
            self.writer.rule(name, self.value(target))
        return name

    def _literal(self, item: Any) -> str:
        if isinstance(item, str):
            return f"{self._quote} {json.dumps(item)} {self._quote}"
        if item is None:
            return '"None"'
        return json.dumps(json.dumps(item))

    def _any(self) -> str:
        name = f"{self._prefix}_any"
        if name not in self._refs.values():
            self._refs["#any"] = name
            number = self.writer.schema({"type": "number"})
            scalar = f'{self._quote} {self._string} | {number} | "true" | "false" | "None"'
            array = f'"[" ({name} ("," {name})*)? "]"'
            self.writer.rule(name, f"{scalar} | {array} | {self._any_object()}")
        return name

    def _any_object(self) -> str:
        pair = f'/[^:,{{}}\\[\\]<"]+/ ":" {self._any()}'
        return f'"{{" ({pair} ("," {pair})*)? "}}"'


def _regex_text(text: str) -> str:
    """A regex (between Lark's slashes) that matches ``text`` exactly."""
    return "".join(
        slashes(re.escape(char)) if char.isprintable() else f"\\x{{{ord(char):x}}}" for char in text
    )


_LEADING_TEXT = re.compile(r'(?P<text>"(?:[^"\\]|\\.)*") (?P<rest><\[.*)')


def _is_special(expression: str) -> bool:
    """Whether a markup expression is one special token."""
    return re.fullmatch(r"<\[\d+\]>", expression) is not None


def _listed_strings(schema: Mapping[str, Any] | None) -> list[str] | None:
    """The strings a schema lists (``enum`` / ``const``), when it lists only strings."""
    if not isinstance(schema, Mapping):
        return None
    listed = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(listed, list) and listed and all(isinstance(item, str) for item in listed):
        return listed
    return None


def is_text(expression: str) -> bool:
    """Whether a markup expression is text (a special token needs no lazy match: free text
    never contains one)."""
    return not expression.startswith("<[")


def slashes(pattern: str) -> str:
    """``pattern`` with its unescaped ``/`` escaped, so it can sit between Lark's slashes."""
    out, escaped = [], False
    for char in pattern:
        if char == "/" and not escaped:
            out.append("\\/")
        else:
            out.append(char)
        escaped = char == "\\" and not escaped
    return "".join(out)
