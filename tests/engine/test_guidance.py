"""The constraint compiler both engines use (issue 24): every JSON Schema keyword is either
enforced or refused with a message naming it; nothing is ignored silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tether.engine.errors import StructuredOutputError
from tether.engine.guidance import (
    SAFE_INTEGER,
    GuidanceOptions,
    check,
    compile_grammar,
    lark,
    special_markup,
    tool_call_schemas,
)
from tether.engine.structured import (
    CallSection,
    CallShape,
    LazyCalls,
    StructuredOutput,
    ThinkingPrefix,
    ToolFunction,
)

ENFORCED: dict[str, dict[str, Any]] = {
    "minimum/maximum": {"type": "integer", "minimum": 1, "maximum": 5},
    "exclusive bounds": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "multipleOf": {"type": "integer", "multipleOf": 3},
    "multipleOf (decimal)": {"type": "number", "multipleOf": 0.01},
    "string lengths": {"type": "string", "minLength": 2, "maxLength": 5},
    "pattern": {"type": "string", "pattern": "^[a-z]+$"},
    **{
        f"format {name}": {"type": "string", "format": name}
        for name in ("date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6")
    },
    "minItems/maxItems": {"type": "array", "minItems": 1, "maxItems": 3},
    "minProperties/maxProperties": {"type": "object", "minProperties": 1, "maxProperties": 2},
    "patternProperties": {
        "type": "object",
        "patternProperties": {"^x_": {"type": "string"}},
        "minProperties": 1,
    },
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
    "enum/const": {"enum": ["a", 1, None], "const": "a"},
    "anyOf": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    "oneOf (disjoint)": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    "allOf": {"allOf": [{"type": "object", "required": ["a"]}, {"maxProperties": 2}]},
    "$ref/$defs": {"$ref": "#/$defs/A", "$defs": {"A": {"type": "integer"}}},
}

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "uniqueItems": ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    "not": ({"not": {"type": "string"}}, "not"),
    "if/then": ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if, then"),
    "contains": ({"type": "array", "contains": {"type": "integer"}}, "contains"),
    "dependentRequired": ({"dependentRequired": {"a": ["b"]}}, "dependentRequired"),
    "propertyNames": ({"propertyNames": {"pattern": "^a"}}, "propertyNames"),
    "overlapping oneOf": ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf"),
    "unknown format": ({"type": "string", "format": "no-such-format"}, "no-such-format"),
    "remote $ref": ({"$ref": "https://example.com/a.json"}, "https://example.com/a.json"),
}


@pytest.mark.parametrize("schema", ENFORCED.values(), ids=ENFORCED.keys())
def test_enforced_keywords_compile(schema: dict[str, Any]) -> None:
    check(compile_grammar(StructuredOutput(json_schema=schema)))


@pytest.mark.parametrize(("schema", "named"), REFUSED.values(), ids=REFUSED.keys())
def test_keywords_that_cannot_be_enforced_are_refused_by_name(
    schema: dict[str, Any], named: str
) -> None:
    with pytest.raises(StructuredOutputError, match=named) as caught:
        check(compile_grammar(StructuredOutput(json_schema=schema)))
    assert not str(caught.value).startswith("at ")  # llguidance's grammar position is gone


def test_lenient_schemas_make_unenforceable_keywords_advisory() -> None:
    lenient = GuidanceOptions(lenient=True)
    for schema in ({"type": "array", "uniqueItems": True}, {"oneOf": [{}, {"type": "number"}]}):
        check(compile_grammar(StructuredOutput(json_schema=schema), options=lenient), None, lenient)
    # A client's own x-guidance cannot relax what the server enforces.
    sneaky = {"type": "array", "uniqueItems": True, "x-guidance": {"lenient": True}}
    with pytest.raises(StructuredOutputError, match="uniqueItems"):
        check(compile_grammar(StructuredOutput(json_schema=sneaky)))


def test_json_has_no_free_whitespace_and_integers_stay_exact() -> None:
    text = lark(
        StructuredOutput(
            json_schema={
                "type": "object",
                "properties": {"n": {"type": "integer"}, "c": {"const": {"type": "integer"}}},
            }
        )
    )
    schema = json.loads(text.split("%json ", 1)[1].splitlines()[0])
    assert schema["x-guidance"]["whitespace_flexible"] is False
    assert schema["properties"]["n"] == {
        "type": "integer",
        "minimum": -SAFE_INTEGER,
        "maximum": SAFE_INTEGER,
    }
    assert schema["properties"]["c"] == {"const": {"type": "integer"}}  # data, untouched
    assert schema["additionalProperties"] is False  # listed properties: only those


def test_properties_named_like_keywords_are_names() -> None:
    named = {"properties": {"type": "integer"}, "type": {"type": "string"}}
    text = lark(StructuredOutput(json_schema={"type": "object", "properties": named}))
    schema = json.loads(text.split("%json ", 1)[1].splitlines()[0])
    assert set(schema["properties"]) == {"properties", "type"}  # no keyword added to the map
    assert schema["properties"]["properties"]["maximum"] == SAFE_INTEGER
    assert schema["properties"]["type"] == {"type": "string"}


def test_an_object_that_lists_no_properties_stays_open() -> None:
    text = lark(StructuredOutput.json_object())
    schema = json.loads(text.split("%json ", 1)[1].splitlines()[0])
    assert "additionalProperties" not in schema
    pattern = {"properties": {"a": {}}, "patternProperties": {"^x": {}}}
    text = lark(StructuredOutput(json_schema=pattern))
    assert '"additionalProperties"' not in text


def test_regexes_are_whole_matches_and_lookaround_is_refused() -> None:
    check(compile_grammar(StructuredOutput(regex=r"a/b\d+")))
    with pytest.raises(StructuredOutputError, match="look-around"):
        check(compile_grammar(StructuredOutput(regex="(?=a)a")))


def test_a_forced_call_keeps_each_functions_refs_pointing_into_its_arguments() -> None:
    params = {"properties": {"i": {"$ref": "#/$defs/I"}}, "$defs": {"I": {"type": "integer"}}}
    first, second = tool_call_schemas((ToolFunction("f", params), ToolFunction("g")))
    assert first["properties"]["name"] == {"const": "f"}
    assert first["properties"]["arguments"]["properties"]["i"] == {
        "$ref": "#/properties/arguments/$defs/I"
    }
    assert second["properties"]["arguments"] == {"type": "object"}
    spec = StructuredOutput(tool_call=(ToolFunction("f", params), ToolFunction("g")))
    check(compile_grammar(spec))


def test_every_form_compiles_with_a_reasoning_prefix() -> None:
    shape = CallShape(('{"name": "f", "arguments": ',), {"type": "object"}, ("}</tool_call>",))
    bare = CallShape(('"name": "f", "parameters": ',), {"type": "object"}, ("}",))
    forms = [
        StructuredOutput(json_schema={"type": "object"}, thinking=ThinkingPrefix("</think>")),
        StructuredOutput(regex="yes|no", thinking=ThinkingPrefix("</think>", "<think>")),
        StructuredOutput(choice=("a", "b"), thinking=ThinkingPrefix("</think>")),
        StructuredOutput(lazy_calls=LazyCalls((CallSection("<tool_call>", (shape,)),))),
        StructuredOutput(lazy_calls=LazyCalls((CallSection("{", (bare,)),), at_start=True)),
    ]
    for spec in forms:
        check(compile_grammar(spec))


def test_special_tokens_are_matched_by_id() -> None:
    markup = special_markup({"<|call|>": 7, "<|c|>": 8})
    assert markup("<|call|>f(<|c|>") == '<[7]> "f(" <[8]>'
    assert markup("plain") == '"plain"'
    assert special_markup({})("x") == '"x"'
