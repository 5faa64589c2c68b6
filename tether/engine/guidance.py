"""``StructuredOutput`` → an llguidance grammar: the one compiler both engines use.

llguidance (guidance-ai's constrained-decoding library, which vLLM's ``guidance`` backend
also runs) enforces the whole of JSON Schema's validation vocabulary that can be enforced
token by token: numeric bounds and ``multipleOf``, string lengths, ``pattern`` and the common
``format``\\ s, array and object sizes, ``patternProperties``, ``anyOf``/``oneOf``/``allOf``,
``$ref``. A keyword it cannot enforce (``uniqueItems``, ``not``, ``if``/``then`` …) is
refused with a 400 that names it, unless the server runs with ``--lenient-schemas``, which
makes such keywords advisory (llguidance's ``lenient``). Nothing is ignored silently.

Every form becomes one Lark grammar (llguidance's dialect): JSON through ``%json {schema}``,
regexes as a lexeme, choices as literals, a forced call as the JSON of the call object, calls
the model opens itself as a lazy trigger followed by the call's shape, and a reasoning model's
free reasoning as text up to its end marker before any of them. JSON has no free whitespace
(the small model loops on it): items are separated by ``", "`` and keys by ``": "``, as
Python's ``json.dumps`` writes them. A schema is narrowed where a small model would otherwise
write until ``max_tokens`` (every output still valid against the original): an integer with
no bound on a side is kept within ±(2^53 − 1), the range every JSON reader keeps exact, and
an object that lists its ``properties`` and says nothing of others gets only those, as
llama.cpp's converter and OpenAI's strict mode read it.

``markup(text)`` writes a literal of the model's markup: an engine whose vocabulary has the
text as a special token (``<tool_call>`` in Qwen's, ``<|channel|>`` in gpt-oss') returns the
token (``<[id]>``), since llguidance matches special tokens only by id.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import llguidance

from tether.engine.errors import StructuredOutputError
from tether.engine.structured import (
    ANY_OBJECT,
    CallSection,
    CallShape,
    LazyCalls,
    Pattern,
    Pieces,
    StructuredOutput,
    TaggedArguments,
    ThinkingPrefix,
    ToolFunction,
)

log = logging.getLogger(__name__)

Markup = Callable[[str], str]
"""A literal of the model's markup as a Lark expression."""


def plain_markup(text: str) -> str:
    """Markup written as text: no special tokens (a vocabulary that has none of them)."""
    return json.dumps(text)


def special_markup(special: Mapping[str, int]) -> Markup:
    """Markup for a vocabulary whose special tokens are ``special`` (text → id): each one
    in the text is matched by its id, the rest as text."""
    texts = sorted((text for text in special if text), key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(text) for text in texts)) if texts else None

    def markup(text: str) -> str:
        if pattern is None:
            return plain_markup(text)
        parts, at = [], 0
        for found in pattern.finditer(text):
            if found.start() > at:
                parts.append(plain_markup(text[at : found.start()]))
            parts.append(f"<[{special[found.group()]}]>")
            at = found.end()
        if at < len(text):
            parts.append(plain_markup(text[at:]))
        return " ".join(parts)

    return markup


@dataclass(frozen=True, slots=True)
class GuidanceOptions:
    """Server-wide choices of the compiler. ``lenient``: JSON Schema keywords llguidance cannot
    enforce are accepted as advisory instead of refused (``--lenient-schemas``)."""

    lenient: bool = False

    def json_options(self) -> dict[str, Any]:
        return {
            "whitespace_flexible": False,
            "item_separator": ", ",
            "key_separator": ": ",
            "lenient": self.lenient,
            "coerce_one_of": self.lenient,
        }


def lark(
    spec: StructuredOutput, markup: Markup = plain_markup, options: GuidanceOptions | None = None
) -> str:
    """``spec`` as a Lark grammar in llguidance's dialect (what vLLM's ``guidance`` backend
    takes as a ``grammar``)."""
    return _Lark(markup, options or GuidanceOptions()).grammar(spec)


def compile_grammar(
    spec: StructuredOutput, markup: Markup = plain_markup, options: GuidanceOptions | None = None
) -> str:
    """llguidance's grammar for ``spec`` (not yet checked: see ``check``)."""
    return llguidance.LLMatcher.grammar_from_lark(lark(spec, markup, options))


def checked_lark(
    spec: StructuredOutput, markup: Markup = plain_markup, options: GuidanceOptions | None = None
) -> str:
    """``lark(spec, ...)``, checked as ``check`` does, without a tokenizer (for an engine
    that keeps its tokenizer to itself: vLLM)."""
    text = lark(spec, markup, options)
    check(llguidance.LLMatcher.grammar_from_lark(text), None, options)
    return text


def check(
    grammar: str,
    tokenizer: llguidance.LLTokenizer | None = None,
    options: GuidanceOptions | None = None,
) -> None:
    """Raise ``StructuredOutputError`` (a 400) naming what llguidance refuses in ``grammar``:
    a JSON Schema keyword it cannot enforce (unless ``options.lenient``: then it is only
    logged), a regex it cannot read, a grammar too large."""
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    # Without the tokenizer, special tokens (``<[id]>``) cannot be checked: the engine that
    # holds it resolves them.
    problems = [
        _explain(message)
        for message in messages
        if not (tokenizer is None and message.startswith(_NO_TOKENIZER))
    ]
    if is_error or (problems and not (options and options.lenient)):
        raise StructuredOutputError("; ".join(problems) or "llguidance refused the grammar")
    for problem in problems:
        log.info("advisory (--lenient-schemas): %s", problem)


_NO_TOKENIZER = "no tokenizer - can't validate <[...]>"
_POSITION = re.compile(r"^at \d+\(\d+\): ")
_COERCE = "Enable 'coerce_one_of' option to approximate oneOf with anyOf"
_LENIENT_ONE_OF = (
    "only a oneOf whose branches cannot both match is enforced (start the server with "
    "--lenient-schemas to read it as anyOf)"
)
_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[(?P<keys>[^\]]*)\]")


def _explain(message: str) -> str:
    found = _UNIMPLEMENTED.search(message)
    if found is None:
        # Drop llguidance's position ("at 2(9): ") and the grammar listing it appends.
        text = _POSITION.sub("", " ".join(message.split()).split(" 1 | ")[0])
        return text.replace(_COERCE, _LENIENT_ONE_OF)[:400]
    keys = ", ".join(key.strip().strip('"') for key in found["keys"].split(","))
    return (
        f"the JSON schema uses {keys}, which cannot be enforced while the output is "
        "generated; remove it (or start the server with --lenient-schemas to accept such "
        "keywords as advisory)"
    )


class _Lark:
    """Writes one spec as a Lark grammar whose start rule is ``start``."""

    def __init__(self, markup: Markup, options: GuidanceOptions) -> None:
        self._markup = markup
        self._json = options.json_options()
        self._rules: list[str] = []
        self._text_rules: dict[str, str] = {}  # a closing tag → the rule of text up to it

    def grammar(self, spec: StructuredOutput) -> str:
        answer = self._answer(spec)
        if spec.thinking is not None:
            answer = self._thinking(spec.thinking, answer)
        return "\n".join([f"start: {answer}", *self._rules, "TEXT: /(.|\\n)*/"]) + "\n"

    def _rule(self, name: str, body: str, lazy: bool = False) -> str:
        """Add ``name: body`` (``lazy``: it ends at the first place it can) and return
        ``name``."""
        self._rules.append(f"{name}{'[lazy]' if lazy else ''}: {body}")
        return name

    def _schema(self, schema: Mapping[str, Any]) -> str:
        if not isinstance(schema, Mapping):
            raise StructuredOutputError("a JSON schema must be an object")
        given = schema.get("x-guidance")
        options = {**self._json, **(given if isinstance(given, Mapping) else {})}
        # A client's x-guidance may tune the output, never relax what is enforced.
        options["lenient"], options["coerce_one_of"] = self._json["lenient"], self._json["lenient"]
        return "%json " + json.dumps({**_tighten(schema), "x-guidance": options})

    def _answer(self, spec: StructuredOutput) -> str:
        if spec.json_schema is not None:
            return self._rule("answer", self._schema(spec.json_schema))
        if spec.regex is not None:
            return self._rule("answer", _regex_lexeme(spec.regex))
        if spec.choice is not None:
            return self._rule("answer", " | ".join(json.dumps(text) for text in spec.choice))
        if spec.lazy_calls is not None:
            return self._lazy_calls(spec.lazy_calls)
        assert spec.tool_call is not None  # StructuredOutput has exactly one form
        calls = [self._schema(schema) for schema in tool_call_schemas(spec.tool_call)]
        return self._rule("answer", " | ".join(calls))

    def _lazy_calls(self, spec: LazyCalls) -> str:
        """Free text in which a trigger opens a section of calls, constrained to the section's
        shapes; then free text again (llguidance's lazy lexemes: the text ends at the
        trigger's first occurrence; a special-token trigger needs none, since text never
        contains one)."""
        heads, triggers = [], []  # triggers: as Lark expressions
        for index, trigger in enumerate(spec.triggers):
            sections = [s for s in spec.sections if s.trigger == trigger]
            body = self._rule(
                f"call_{index}_body",
                " | ".join(self._section(f"call_{index}_{n}", s) for n, s in enumerate(sections)),
            )
            opener = self._markup(trigger)
            triggers.append(opener)
            if spec.at_start:
                head = self._rule(f"call_{index}_head", f"/[ \\t\\n]*/ {opener}")
            else:
                head = self._rule(f"call_{index}_head", f"TEXT {opener}", _is_text(opener))
            heads.append(f"{head} {body}")
        calls = " | ".join(heads)
        # Free text is text and the markers that are special tokens (text never holds one);
        # a trigger that is a special token may only open its section.
        specials = [
            expression
            for marker in dict.fromkeys(spec.markers)
            if _is_special(expression := self._markup(marker)) and expression not in triggers
        ]
        special = f"({' | '.join(specials)})" if specials else ""
        if spec.at_start:
            # The call must be the first thing written; anything else is free text.
            starts = "|".join(re.escape(trigger) for trigger in spec.triggers)
            free = self._rule("FREE", f"/(.|\\n)*/ & ~/[ \\t\\n]*({_slashes(starts)})(.|\\n)*/")
            after = f"(TEXT {special})* TEXT" if special else "TEXT"
            first = self._rule("calls", f"({calls})+ {after}")
            rest = f" ({special} TEXT)*" if special else ""
            return self._rule("answer", f"{first} | {free}{rest}")
        pieces = f"{calls} | TEXT {special}" if special else calls
        return self._rule("answer", f"({pieces})* TEXT")

    def _section(self, name: str, section: CallSection) -> str:
        call = self._rule(f"{name}_call", " | ".join(self._call(s) for s in section.shapes))
        calls = call
        if section.separator is not None:
            calls = f"{call} ({self._pieces(section.separator)} {call})*"
        return self._join(self._pieces(section.opener), calls, self._pieces(section.closer))

    def _call(self, shape: CallShape) -> str:
        if shape.tagged is not None:
            arguments = self._tagged(shape.tagged)
        elif shape.bare_keys is not None:
            arguments = _BareKeys(self, shape.bare_keys.quote, shape.parameters).value()
        else:
            arguments = self._schema(shape.parameters or ANY_OBJECT)
        return self._join(self._pieces(shape.begin), arguments, self._pieces(shape.end))

    def _tagged(self, tagged: TaggedArguments) -> str:
        """One tag per parameter, in the schema's order, the optional ones optional."""
        key_open, key_close = self._pieces(tagged.key_open), self._pieces(tagged.key_close)
        if tagged.parameters is None:
            any_key = '/[^<>"\\n]+/'
            value = self._text_value(tagged.value_close)
            return f"({self._join(key_open, any_key, key_close, value)})*"
        items = []
        for parameter in tagged.parameters:
            if parameter.text:
                value = self._text_value(tagged.value_close, parameter.schema)
            else:
                options = [self._schema(parameter.schema)]
                options += [json.dumps(literal) for literal in parameter.literals]
                value = self._join(f"({' | '.join(options)})", self._pieces(tagged.value_close))
            item = self._join(key_open, json.dumps(parameter.key), key_close, value)
            items.append(item if parameter.required else f"({item})?")
        return self._join(*items)

    def _text_value(self, close: Pieces, schema: Mapping[str, Any] | None = None) -> str:
        """A value written as bare text up to its closing tag (``close[0]``): one of the
        schema's strings when it lists them, else any text without the closing tag."""
        tag, rest = close[0], self._pieces(close[1:])
        assert isinstance(tag, str) and tag, "a value's closing tag is markup"
        strings = _listed_strings(schema)
        if strings is not None:
            listed = " | ".join(json.dumps(text) for text in strings)
            return self._join(f"({listed})", self._markup(tag), rest)
        closing = self._markup(tag)
        name = self._text_rules.get(closing)
        if name is None:
            name = f"text_{len(self._text_rules)}"
            self._text_rules[closing] = name
            if "<[" not in closing:  # all text: the value ends at the tag's first occurrence
                self._rule(name, f"TEXT {closing}", lazy=True)
            elif (found := _LEADING_TEXT.fullmatch(closing)) is not None:
                # Text, then special tokens: the value runs up to the text before the first
                # one (text never holds a special token, so it cannot run past it).
                before = _regex_text(json.loads(found["text"]))
                self._rule(name, f"/(.|\\n)*{before}/ {found['rest']}")
            else:
                self._rule(name, f"TEXT {closing}")
        return self._join(name, rest)

    def _pieces(self, pieces: Pieces) -> str:
        return self._join(
            *(
                f"/{_slashes(piece.regex)}/" if isinstance(piece, Pattern) else self._literal(piece)
                for piece in pieces
            )
        )

    @staticmethod
    def _join(*parts: str) -> str:
        return " ".join(part for part in parts if part)

    def _literal(self, text: str) -> str:
        return self._markup(text) if text else ""

    def _thinking(self, prefix: ThinkingPrefix, answer: str) -> str:
        """Reasoning text up to the first ``prefix.end``, at most four whitespace characters,
        then the answer; with ``prefix.start``, the reasoning is optional and opens with it."""
        end = self._markup(prefix.end)
        reasoning = self._rule("reasoning", f"TEXT {end}", _is_text(end))
        block = f"{reasoning} /[ \\t\\n]{{0,4}}/"
        if prefix.start is not None:
            block = f"({self._markup(prefix.start)} /[ \\t\\n]*/ {block})?"
        return f"{block} {answer}"


class _BareKeys:
    """A schema as a grammar of ``BareKeyArguments``' notation: objects with their properties
    in sorted order (the required ones required), arrays of the items' schema, strings between
    quote marks (one of the listed ones, if the schema lists them), numbers as JSON within the
    schema's bounds, ``true`` / ``false``, ``None``. A ``$ref`` into the schema's own
    ``$defs`` is a rule of its own (so it may recurse); other string keywords are advisory."""

    _NUMERIC = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")

    def __init__(self, grammar: _Lark, quote: str, root: Mapping[str, Any]) -> None:
        self._grammar = grammar
        self._quote = grammar._markup(quote)
        self._string = grammar._text_value((quote,))
        self._root = root
        self._refs: dict[str, str] = {}
        self._prefix = f"bare_{len(grammar._rules)}"

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
            return self._grammar._schema({**numeric, "type": kind})
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
            self._grammar._rule(name, self.value(target))
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
            number = self._grammar._schema({"type": "number"})
            scalar = f'{self._quote} {self._string} | {number} | "true" | "false" | "None"'
            array = f'"[" ({name} ("," {name})*)? "]"'
            self._grammar._rule(name, f"{scalar} | {array} | {self._any_object()}")
        return name

    def _any_object(self) -> str:
        pair = f'/[^:,{{}}\\[\\]<"]+/ ":" {self._any()}'
        return f'"{{" ({pair} ("," {pair})*)? "}}"'


SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader keeps exactly (RFC 7493, I-JSON)."""

# Keywords whose values are schemas, maps of names to schemas, or lists of schemas; every
# other keyword's value is data (``const``, ``enum``, ``default``, ``x-guidance`` …).
_SCHEMA = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
    }
)
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems", "items"})
_OTHER_PROPERTIES = frozenset(
    {"additionalProperties", "patternProperties", "unevaluatedProperties"}
)


def _tighten(schema: Any) -> Any:
    """``schema`` narrowed to what a small model can finish, every output still valid against
    the original: an ``integer`` with no bound on a side is bounded at ±``SAFE_INTEGER`` on
    that side (it would write digits until ``max_tokens``), and an object that lists its
    ``properties`` and says nothing of others gets only those (as llama.cpp's converter and
    OpenAI's strict mode read it; it would invent keys until ``max_tokens``). Only the
    schemas inside it are walked (a property named ``type`` is a name, not a keyword)."""
    if not isinstance(schema, Mapping):
        return schema  # true / false
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_tighten(item) for item in value]
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: _tighten(item) for name, item in value.items()}
        elif key in _SCHEMA:
            out[key] = _tighten(value)
        else:
            out[key] = value
    if "properties" in out and not _OTHER_PROPERTIES.intersection(out):
        out["additionalProperties"] = False
    if out.get("type") == "integer":
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -SAFE_INTEGER
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = SAFE_INTEGER
    return out


def _regex_text(text: str) -> str:
    """A regex (between Lark's slashes) that matches ``text`` exactly."""
    return "".join(
        _slashes(re.escape(char)) if char.isprintable() else f"\\x{{{ord(char):x}}}"
        for char in text
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


def _is_text(expression: str) -> bool:
    """Whether a markup expression is text (a special token needs no lazy match: free text
    never contains one)."""
    return not expression.startswith("<[")


def tool_call_schemas(functions: tuple[ToolFunction, ...]) -> list[dict[str, Any]]:
    r"""The JSON schema of each function's forced call: ``{"name": <the function>,
    "arguments": {...}}``, the arguments matching the function's schema (any object when it
    has none), their local ``$ref``\ s pointing to where the arguments now sit."""
    return [
        {
            "type": "object",
            "properties": {
                "name": {"const": function.name},
                "arguments": _nest_refs(dict(function.parameters or ANY_OBJECT), _ARGUMENTS),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for function in functions
    ]


_ARGUMENTS = "/properties/arguments"


def _nest_refs(node: Any, prefix: str) -> Any:
    """``node`` with every local ``$ref`` (``#`` or ``#/...``) moved under ``prefix``."""
    if isinstance(node, Mapping):
        out = {key: _nest_refs(value, prefix) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            out["$ref"] = "#" + prefix + ref[1:]
        return out
    if isinstance(node, list):
        return [_nest_refs(item, prefix) for item in node]
    return node


def _regex_lexeme(pattern: str) -> str:
    """A regex (matched whole) as a Lark lexeme; llguidance reads Rust's regex syntax, which
    has no look-around or back-references: such a pattern is refused by ``check``."""
    return f"/{_slashes(pattern)}/"


def _slashes(pattern: str) -> str:
    """``pattern`` with its unescaped ``/`` escaped, so it can sit between Lark's slashes."""
    out, escaped = [], False
    for char in pattern:
        if char == "/" and not escaped:
            out.append("\\/")
        else:
            out.append(char)
        escaped = char == "\\" and not escaped
    return "".join(out)
