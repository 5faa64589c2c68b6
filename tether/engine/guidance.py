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
the model opens itself as a lazy trigger followed by the call's section
(``tether.engine.call_grammar``), and a reasoning model's
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import llguidance

from tether.engine.call_grammar import CallGrammar, Markup, is_text, slashes
from tether.engine.errors import StructuredOutputError
from tether.engine.structured import ANY_OBJECT, StructuredOutput, ThinkingPrefix, ToolFunction

__all__ = [
    "SAFE_INTEGER",
    "GuidanceOptions",
    "Markup",
    "check",
    "checked_lark",
    "compile_grammar",
    "lark",
    "plain_markup",
    "special_markup",
    "tool_call_schemas",
]

log = logging.getLogger(__name__)


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

    def grammar(self, spec: StructuredOutput) -> str:
        answer = self._answer(spec)
        if spec.thinking is not None:
            answer = self._thinking(spec.thinking, answer)
        return "\n".join([f"start: {answer}", *self._rules, "TEXT: /(.|\\n)*/"]) + "\n"

    def rule(self, name: str, body: str, lazy: bool = False) -> str:
        """Add ``name: body`` (``lazy``: it ends at the first place it can) and return
        ``name``."""
        self._rules.append(f"{name}{'[lazy]' if lazy else ''}: {body}")
        return name

    def schema(self, schema: Mapping[str, Any]) -> str:
        if not isinstance(schema, Mapping):
            raise StructuredOutputError("a JSON schema must be an object")
        given = schema.get("x-guidance")
        options = {**self._json, **(given if isinstance(given, Mapping) else {})}
        # A client's x-guidance may tune the output, never relax what is enforced.
        options["lenient"], options["coerce_one_of"] = self._json["lenient"], self._json["lenient"]
        return "%json " + json.dumps({**_tighten(schema), "x-guidance": options})

    def _answer(self, spec: StructuredOutput) -> str:
        if spec.json_schema is not None:
            return self.rule("answer", self.schema(spec.json_schema))
        if spec.regex is not None:
            return self.rule("answer", _regex_lexeme(spec.regex))
        if spec.choice is not None:
            return self.rule("answer", " | ".join(json.dumps(text) for text in spec.choice))
        if spec.lazy_calls is not None:
            return CallGrammar(self).lazy_calls(spec.lazy_calls)
        assert spec.tool_call is not None  # StructuredOutput has exactly one form
        calls = [self.schema(schema) for schema in tool_call_schemas(spec.tool_call)]
        return self.rule("answer", " | ".join(calls))

    def markup(self, text: str) -> str:
        return self._markup(text)

    def _thinking(self, prefix: ThinkingPrefix, answer: str) -> str:
        """Reasoning text up to the first ``prefix.end``, at most four whitespace characters,
        then the answer; with ``prefix.start``, the reasoning is optional and opens with it."""
        end = self._markup(prefix.end)
        reasoning = self.rule("reasoning", f"TEXT {end}", is_text(end))
        block = f"{reasoning} /[ \\t\\n]{{0,4}}/"
        if prefix.start is not None:
            block = f"({self._markup(prefix.start)} /[ \\t\\n]*/ {block})?"
        return f"{block} {answer}"


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
    return f"/{slashes(pattern)}/"
