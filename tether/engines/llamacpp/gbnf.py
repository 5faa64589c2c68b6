"""``StructuredOutput`` → GBNF, the grammar format of llama.cpp's grammar sampler.

``grammar(spec)`` covers every form: JSON schemas (any JSON object is the schema
``{"type": "object"}``), regexes, choices and tool calls. Every grammar's start rule is
``root``. Whitespace
between JSON tokens is at most one space (the converter's ``space ::= " "?``): a model can
otherwise loop on whitespace until ``max_tokens``.

JSON schemas go through llama-cpp-python's ``SchemaConverter`` (a port of llama.cpp's
``json_schema_to_grammar.py``), with the fixes in ``_SchemaConverter`` below. It supports
``type`` (and type lists), ``properties``/``required``/``additionalProperties``, ``items``,
``prefixItems``, ``minItems``/``maxItems``, ``enum``, ``const``, ``anyOf``/``oneOf``, ``allOf``
of objects, local ``$ref`` (recursive too), string ``minLength``/``maxLength``, ``pattern``
(the subset ``RegexToGbnf`` handles, read with Python's ``re`` syntax) and the formats
``date``, ``time``, ``date-time`` and ``uuid``. It ignores numeric bounds (``minimum`` …),
other formats, ``patternProperties``, and the length bounds of a string with a ``pattern``;
what it cannot express (``not``, ``if``, remote ``$ref`` …) raises ``StructuredOutputError``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from llama_cpp import llama_grammar

from tether.engine.errors import StructuredOutputError
from tether.engine.structured import (
    ANY_OBJECT,
    LazyCalls,
    StructuredOutput,
    ThinkingPrefix,
    ToolFunction,
)
from tether.engines.llamacpp.regex_to_gbnf import RegexToGbnf, gbnf_literal

# llama.cpp's current string-character rule: the bundled port still allows raw control
# characters (and so invalid JSON) in strings. Source: llama.cpp
# common/json-schema-to-grammar.cpp, PRIMITIVE_RULES["char"].
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})'
_RULE_NAME_INVALID = re.compile(r"[^a-zA-Z0-9-]+")

# The bundled converter is unannotated; subclassing it through ``Any`` keeps mypy strict quiet.
_UpstreamConverter: Any = llama_grammar.SchemaConverter


class _SchemaConverter(_UpstreamConverter):  # type: ignore[misc]
    """The upstream converter with strict JSON strings, our regex converter, unique ref names."""

    def __init__(self) -> None:
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._ref_rules: dict[str, str] = {}

    def _add_primitive(self, name: str, rule: Any) -> str:
        if name == "char":
            rule = llama_grammar.BuiltinRule(_JSON_CHAR, [])
        return str(super()._add_primitive(name, rule))

    def _visit_pattern(self, pattern: str, name: str) -> str:
        # JSON Schema patterns match anywhere in the string unless anchored (JSON Schema
        # validation, section 6.3.3); the upstream converter insists on "^...$" instead.
        if not pattern.startswith("^"):
            pattern = f".*(?:{pattern})"
        if not _ends_with_anchor(pattern):
            pattern = f"(?:{pattern}).*"
        body = RegexToGbnf(pattern, json_string=True).convert()
        return str(self._add_rule(name, rf'"\"" ({body}) "\"" space'))

    def resolve_refs(self, schema: Any, url: str) -> Any:
        """Record the target of every local ``$ref`` in ``schema``, renamed ``<url>#/...``.

        Replaces upstream's, which skips the siblings of a ``$ref`` (so refs inside a root
        ``{"$ref": ..., "$defs": ...}`` stay unresolved) and fetches remote refs when asserts
        are off (``python -O``). Only ``#`` and ``#/...`` (JSON Pointer, RFC 6901) are allowed.
        """
        for node in list(_ref_nodes(schema)):
            ref = node["$ref"]
            if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
                raise ValueError(f"only local $ref ('#/...') is supported, got {ref!r}")
            node["$ref"] = f"{url}{ref}"
            self._refs[node["$ref"]] = _pointer_target(schema, ref[2:])
        return schema

    def _resolve_ref(self, ref: str) -> str:
        # Upstream names a ref's rule after its last segment and reuses any rule of that name,
        # so two tools' "#/$defs/Item" (or a property called "Item") would share one rule.
        if ref not in self._ref_rules:
            name = self._fresh_name("ref-" + _RULE_NAME_INVALID.sub("-", ref).strip("-"))
            self._ref_rules[ref] = name  # set first: a recursive schema refers to itself
            rule = self.visit(self._refs[ref], name)
            if rule != name:  # primitives come back under their own name, e.g. "string"
                self._add_rule(name, rule)
        return self._ref_rules[ref]

    def _fresh_name(self, base: str) -> str:
        taken = set(self._rules) | set(self._ref_rules.values())
        name, suffix = base, 0
        while name in taken:
            suffix += 1
            name = f"{base}{suffix}"
        return name


def grammar(spec: StructuredOutput) -> str:
    """The GBNF grammar for ``spec``; ``StructuredOutputError`` if it cannot be expressed."""
    answer = _answer_grammar(spec)
    if spec.thinking is None:
        return answer
    return thinking_grammar(spec.thinking) + _rename_rule(answer, "root", _ANSWER)


def _answer_grammar(spec: StructuredOutput) -> str:
    if spec.json_schema is not None:
        return json_schema_grammar(spec.json_schema)
    if spec.regex is not None:
        return regex_grammar(spec.regex)
    if spec.choice is not None:
        return "root ::= " + " | ".join(gbnf_literal(text) for text in spec.choice) + "\n"
    if spec.lazy_calls is not None:
        return lazy_calls_grammar(spec.lazy_calls)
    assert spec.tool_call is not None  # StructuredOutput has exactly one form
    return tool_call_grammar(spec.tool_call)


# --- a reasoning model's free reasoning before the answer ---------------------------------------

_ANSWER = "tether-answer"
_THINK = "tether-think"


def thinking_grammar(prefix: ThinkingPrefix) -> str:
    """``root``: reasoning text up to the first ``prefix.end`` (text that does not contain it,
    then it), at most four whitespace characters, then the ``tether-answer`` rule."""
    end = prefix.end
    lines = [f"{_THINK}-{state} ::= {body}" for state, body in _until_marker(end)]
    thinking = f"{_THINK}-0 [ \\t\\n]{{0,4}}"
    if prefix.start is not None:
        thinking = f"( {gbnf_literal(prefix.start)} [ \\t\\n]* {thinking} )?"
    return "\n".join([f"root ::= {thinking} {_ANSWER}", *lines]) + "\n"


def _until_marker(marker: str) -> Iterator[tuple[int, str]]:
    """Rule bodies of an automaton over text that ends at ``marker``'s first occurrence.

    State ``q`` has matched the first ``q`` characters of the marker; a character moves it
    as Knuth-Morris-Pratt would, and the marker's last character ends the text. Characters
    not in the marker return to state 0.
    """
    for q, moves, others in _marker_automaton(marker):
        options = [
            literal if target == len(marker) else f"{literal} {_THINK}-{target}"
            for literal, target in moves
        ]
        options.append(f"[^{others}] {_THINK}-0")
        yield q, " | ".join(options)


def _marker_automaton(marker: str) -> Iterator[tuple[int, list[tuple[str, int]], str]]:
    """For each state ``q`` (the first ``q`` characters of ``marker`` matched): the moves on
    the marker's own characters, as ``(GBNF literal, next state)`` with ``len(marker)`` for
    a whole match, and the character class of every other character (back to state 0)."""
    m = len(marker)
    failure = _borders(marker)
    alphabet = sorted(set(marker))
    others = "".join(_class_char(char) for char in alphabet)
    for q in range(m):
        moves = []
        for char in alphabet:
            if char == marker[q]:
                target = q + 1
            else:
                target = failure[q]
                while target and marker[target] != char:
                    target = failure[target]
                target = target + 1 if marker[target] == char else 0
            moves.append((gbnf_literal(char), target))
        yield q, moves, others


def _borders(marker: str) -> list[int]:
    """``borders[q]``: the length of the longest proper prefix of ``marker[:q]`` that is also
    its suffix (KMP's failure function), for ``q`` in ``0..len(marker)-1``."""
    borders = [0] * (len(marker) + 1)
    k = 0
    for q in range(1, len(marker)):
        while k and marker[k] != marker[q]:
            k = borders[k]
        if marker[k] == marker[q]:
            k += 1
        borders[q + 1] = k
    return borders[: len(marker)]


def _class_char(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}"


def _rename_rule(grammar_text: str, old: str, new: str) -> str:
    """``grammar_text`` with the rule name ``old`` renamed, outside quoted literals and
    character classes (a literal may well contain the word ``root``)."""
    out: list[str] = []
    i, n = 0, len(grammar_text)
    while i < n:
        char = grammar_text[i]
        if char in '"[':
            close = '"' if char == '"' else "]"
            j = i + 1
            while j < n and grammar_text[j] != close:
                j += 2 if grammar_text[j] == "\\" else 1
            out.append(grammar_text[i : j + 1])
            i = j + 1
        elif char.isalnum() or char == "-":
            j = i
            while j < n and (grammar_text[j].isalnum() or grammar_text[j] == "-"):
                j += 1
            word = grammar_text[i:j]
            out.append(new if word == old else word)
            i = j
        else:
            out.append(char)
            i += 1
    return "".join(out)


def json_schema_grammar(schema: Mapping[str, Any]) -> str:
    """Text that parses as JSON and matches ``schema`` (see the module docstring for limits)."""
    return _convert([schema], lambda resolved: resolved[0])


def regex_grammar(pattern: str) -> str:
    """Raw text (no quotes) matching ``pattern``; see ``RegexToGbnf`` for the supported syntax."""
    try:
        return f"root ::= {RegexToGbnf(pattern).convert()}\n"
    except ValueError as exc:
        raise StructuredOutputError(str(exc)) from exc


def tool_call_grammar(functions: Sequence[ToolFunction]) -> str:
    """Exactly ``{"name": "<fn>", "arguments": {...}}`` for one of ``functions``, the
    arguments matching that function's ``parameters`` schema (any object when it has none)."""
    parameters = [function.parameters or ANY_OBJECT for function in functions]
    names = [function.name for function in functions]

    def call_schema(resolved: list[Any]) -> dict[str, Any]:
        calls = [_call_schema(fn, params) for fn, params in zip(names, resolved, strict=True)]
        return calls[0] if len(calls) == 1 else {"anyOf": calls}

    return _convert(parameters, call_schema)


def lazy_calls_grammar(spec: LazyCalls) -> str:
    """From the trigger on (llama.cpp feeds a lazy grammar the text from its trigger): a call,
    ``begin``, arguments matching its schema, ``end``; then free text, in which the trigger
    opens the next call, constrained the same way. (With several triggers, or a call that
    must start the answer, the text after the first call is free.)"""
    converter = _SchemaConverter()
    try:
        rules = []
        for index, shape in enumerate(spec.shapes):
            schema = copy.deepcopy(dict(shape.parameters) or dict(ANY_OBJECT))
            resolved = converter.resolve_refs(schema, f"schema{index}")
            rules.append(converter.visit(resolved, f"tether-args-{index}"))
        body = str(converter.format_grammar())
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise StructuredOutputError(f"unsupported JSON schema: {exc}") from exc
    (trigger, *more) = spec.triggers
    repeats = not more and not spec.at_start
    repeats = repeats and all(shape.begin.startswith(trigger) for shape in spec.shapes)
    lines = [
        "root ::= tether-call tether-rest-0",
        f"tether-call ::= {_calls(spec, rules, 0)}",
    ]
    if repeats:
        lines.append(f"tether-next ::= {_calls(spec, rules, len(trigger))}")
        for q, moves, others in _marker_automaton(trigger):
            options = [
                f"{literal} tether-next tether-rest-0"
                if target == len(trigger)
                else f"{literal} tether-rest-{target}"
                for literal, target in moves
            ]
            options.append(f"[^{others}] tether-rest-0")
            lines.append(f"tether-rest-{q} ::= ( {' | '.join(options)} )?")
    else:
        lines.append('tether-rest-0 ::= ( [^\\n] | "\\n" )*')
    return "\n".join([*lines, body]) + "\n"


def _calls(spec: LazyCalls, rules: list[str], skip: int) -> str:
    """The shapes as alternatives, each ``begin`` without its first ``skip`` characters."""
    calls = []
    for shape, rule in zip(spec.shapes, rules, strict=True):
        begin = shape.begin[skip:]
        parts = [gbnf_literal(begin)] if begin else []
        parts.append(rule)
        if shape.end:
            parts.append(gbnf_literal(shape.end))
        calls.append(" ".join(parts))
    return " | ".join(calls)


def trigger_patterns(spec: LazyCalls) -> list[str]:
    """llama.cpp's trigger regexes (ECMAScript) for ``spec``: the grammar starts at the first
    capture group, which is the trigger."""
    alternatives = "|".join(_ecma_escape(trigger) for trigger in spec.triggers)
    if spec.at_start:
        return [f"^\\s*({alternatives})[\\s\\S]*$"]
    return [f"({alternatives})"]


def _ecma_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "\\^$.|?*+()[]{}/" else char for char in text)


def _call_schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _convert(schemas: Sequence[Any], build: Callable[[list[Any]], dict[str, Any]]) -> str:
    """Resolve each of ``schemas``' refs on its own, then convert ``build(resolved)`` as root.

    ``build`` combines the resolved schemas (a tool call nests each function's ``parameters``,
    whose ``#/...`` refs point into that ``parameters`` object, not into the combined schema).
    """
    converter = _SchemaConverter()
    try:
        resolved = []
        for index, schema in enumerate(schemas):
            resolved.append(converter.resolve_refs(copy.deepcopy(schema), f"schema{index}"))
        converter.visit(build(resolved), "")
        return str(converter.format_grammar()) + "\n"
    # The converter signals what it cannot express with assert, ValueError or a failed lookup.
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise StructuredOutputError(f"unsupported JSON schema: {exc}") from exc


def _ref_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node
        for value in node.values():
            yield from _ref_nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _ref_nodes(item)


def _pointer_target(schema: Any, pointer: str) -> Any:
    target = schema
    try:
        for token in pointer.split("/") if pointer else []:
            key = token.replace("~1", "/").replace("~0", "~")
            target = target[int(key)] if isinstance(target, list) else target[key]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ValueError(f"$ref '#/{pointer}' points to nothing in the schema") from exc
    return target


def _ends_with_anchor(pattern: str) -> bool:
    backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    return pattern.endswith("$") and backslashes % 2 == 0
