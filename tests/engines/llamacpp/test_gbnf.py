"""Grammars: each one compiles in llama.cpp's parser and accepts exactly the texts it should.

Parsing needs no model (``llama_sampler_init_grammar`` with no vocabulary only parses).
Acceptance runs the real grammar sampler over the default model's tokenizer, loaded
vocabulary-only (no weights): every token of a sample must pass ``apply`` and then
end-of-generation must be allowed.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from typing import Any

import llama_cpp
import pytest

from tether.engine.errors import StructuredOutputError
from tether.engine.structured import StructuredOutput, ThinkingPrefix, ToolFunction
from tether.engines.llamacpp.gbnf import (
    grammar,
    json_schema_grammar,
    regex_grammar,
)
from tether.engines.llamacpp.gguf import default_model_path

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
NOW = {"type": "function", "function": {"name": "now", "description": "The time"}}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def json_object_grammar() -> str:
    return grammar(StructuredOutput.json_object())


def tool_call_grammar(tools: list[dict[str, Any]], name: str | None = None) -> str:
    """The forced-call grammar for OpenAI-style ``tools`` (all, or only ``name``), as the API
    asks for it."""
    functions = tuple(
        ToolFunction(tool["function"]["name"], tool["function"].get("parameters"))
        for tool in tools
        if name is None or tool["function"]["name"] == name
    )
    return grammar(StructuredOutput(tool_call=functions))


def parses(grammar: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(None, grammar.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(default_model_path().encode(), params)
    assert model, "could not load the default model's vocabulary"
    yield llama_cpp.llama_model_get_vocab(model)
    llama_cpp.llama_model_free(model)


def _tokens(vocab: Any, text: str) -> list[int]:
    data = text.encode()
    out = (llama_cpp.llama_token * (len(data) + 8))()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), out, len(out), False, False)
    assert n >= 0
    return list(out[:n])


def _allowed(sampler: Any, token: int) -> bool:
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    array = llama_cpp.llama_token_data_array(data, 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    return bool(data[0].logit != float("-inf"))


def accepts(vocab: Any, grammar: str, text: str) -> bool:
    """True when the grammar sampler lets the model write exactly ``text`` and then stop."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    assert sampler, f"grammar does not parse:\n{grammar}"
    try:
        for token in _tokens(vocab, text):
            if not _allowed(sampler, token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return _allowed(sampler, llama_cpp.llama_vocab_eos(vocab))
    finally:
        llama_cpp.llama_sampler_free(sampler)


# --- parsing, no model ----------------------------------------------------------------------


def test_json_object_grammar_parses_and_limits_whitespace_to_one_space() -> None:
    text = json_object_grammar()
    assert parses(text)
    assert "root ::= object" in text.splitlines()
    assert 'space ::= " "?' in text.splitlines()


def test_json_schema_grammar_parses() -> None:
    assert parses(json_schema_grammar(PERSON))


def test_tool_call_grammar_parses() -> None:
    assert parses(tool_call_grammar([WEATHER, NOW]))
    assert parses(tool_call_grammar([WEATHER, NOW], name="now"))


def test_json_schema_grammar_leaves_the_callers_schema_alone() -> None:
    schema = {"$ref": "#/$defs/A", "$defs": {"A": {"type": "integer"}}}
    before = json.dumps(schema)
    json_schema_grammar(schema)
    assert json.dumps(schema) == before


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"type": "string"}},
        {"type": "no-such-type"},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "#/$defs/missing"},
        {"properties": ["not", "an", "object"]},
    ],
)
def test_unsupported_schema_is_a_structured_output_error(schema: dict[str, Any]) -> None:
    with pytest.raises(StructuredOutputError, match="unsupported JSON schema"):
        json_schema_grammar(schema)


def test_regex_grammar_writes_raw_text_without_quotes() -> None:
    assert regex_grammar(r"^\d{3}-(yes|no)$") == 'root ::= [0-9]{3} "-" ("yes" | "no")\n'


@pytest.mark.parametrize(
    "pattern",
    [
        r"\d+",
        r"[A-Za-z_][\w-]*",
        r"[^\]\\\-^]+",
        r'say "hi"\\',
        r"(?:ab|cd)*?e{2,}f{,3}g{0}",
        r"(?P<word>\w+)\s(\S|)",
        r"\u00e9\x41\N{SNOWMAN}.",
        r"a{b}",
    ],
)
def test_regex_grammars_parse(pattern: str) -> None:
    assert parses(regex_grammar(pattern))


@pytest.mark.parametrize(
    "pattern",
    [r"(abc", r"(?=a)b", r"\bword", r"(a)\1", r"(?i)abc", r"a*+", r"a{5000}"],
)
def test_unsupported_or_bad_regex_is_a_structured_output_error(pattern: str) -> None:
    with pytest.raises(StructuredOutputError):
        regex_grammar(pattern)


def test_a_choice_is_one_of_its_strings() -> None:
    text = grammar(StructuredOutput(choice=("yes", 'say "no"', "")))
    assert text == 'root ::= "yes" | "say \\"no\\"" | ""\n'
    assert parses(text)


# --- acceptance, on the default model's vocabulary ----------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a": [1, 2.5e3, true, null], "b": {"c": "d\\n\\u00e9"}}', True),
        ('{"a":1}', True),
        ("{}", True),
        ("[1, 2]", False),
        ('{"a": 1', False),
        ('{"a": 01}', False),
        ('{  "a": 1}', False),
        ('{"a": "line\nbreak"}', False),
    ],
)
def test_json_object_grammar_accepts_json_objects_only(vocab: Any, text: str, ok: bool) -> None:
    assert accepts(vocab, json_object_grammar(), text) is ok


@pytest.mark.model
@pytest.mark.parametrize(
    ("instance", "ok"),
    [
        ({"name": "Ada", "age": 36}, True),
        ({"name": "Ada", "age": 36, "tags": ["x", "y"]}, True),
        ({"name": "Ada", "age": 36, "tags": ["x", "y", "z"]}, False),
        ({"name": "ada", "age": 36}, False),
        ({"name": "Ada"}, False),
        ({"name": "Ada", "age": 36, "extra": 1}, False),
        ({"name": "Ada", "age": "36"}, False),
    ],
)
def test_json_schema_grammar_follows_the_schema(
    vocab: Any, instance: dict[str, Any], ok: bool
) -> None:
    assert accepts(vocab, json_schema_grammar(PERSON), json.dumps(instance)) is ok


@pytest.mark.model
def test_recursive_schema_behind_a_root_ref_is_resolved(vocab: Any) -> None:
    # The bundled converter skipped the siblings of a root "$ref", so the inner ref to Node
    # stayed unresolved (KeyError); pydantic emits this shape for recursive models.
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["value", "children"],
            }
        },
    }
    tree = {"value": 1, "children": [{"value": 2, "children": []}]}
    assert accepts(vocab, json_schema_grammar(schema), json.dumps(tree))
    assert not accepts(vocab, json_schema_grammar(schema), json.dumps({"value": 1}))


@pytest.mark.model
@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        (r"\d{3}", "ab123cd", True),  # JSON Schema patterns are unanchored
        (r"^\d{3}$", "ab123", False),
        (r"^\d{3}$", "123", True),
        (r'^say "hi"\\$', 'say "hi"\\', True),
        (r"^[^a]$", '"', True),
        (r"^.+$", "tab\there", True),
    ],
)
def test_string_pattern_produces_valid_json_strings(
    vocab: Any, pattern: str, value: str, ok: bool
) -> None:
    schema_grammar = json_schema_grammar({"type": "string", "pattern": pattern})
    assert accepts(vocab, schema_grammar, json.dumps(value)) is ok


@pytest.mark.model
@pytest.mark.parametrize(
    ("pattern", "text", "ok"),
    [
        (r"\d{3}-\d{4}", "555-1234", True),
        (r"\d{3}-\d{4}", "5551234", False),
        (r"^(yes|no)$", "yes", True),
        (r"^(yes|no)$", "maybe", False),
        (r"[A-Z][a-z]+", "Hello", True),
        (r"[A-Z][a-z]+", "hello", False),
        (r"a.c", "abc", True),
        (r"a.c", "a\nc", False),
        (r"\w+@\w+\.com", "bob@example.com", True),
        (r"\w+@\w+\.com", "bob@example.org", False),
        (r"colou?r", "color", True),
        (r"x{2,3}", "xxxx", False),
        (r"[^0-9]+", "abc", True),
        (r"[^0-9]+", "a1", False),
        (r"^\$\d+(\.\d\d)?$", "$10.50", True),
        (r"^\$\d+(\.\d\d)?$", "$10.5", False),
        (r'say "hi"\\', 'say "hi"\\', True),
        (r"(?P<key>\w+)=(?:\d+|'[^']*')", "size='big'", True),
    ],
)
def test_regex_grammar_matches_like_python_re(
    vocab: Any, pattern: str, text: str, ok: bool
) -> None:
    assert accepts(vocab, regex_grammar(pattern), text) is ok


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "call", "ok"),
    [
        (None, {"name": "get_weather", "arguments": {"city": "Paris"}}, True),
        (None, {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}, True),
        (None, {"name": "get_weather", "arguments": {"unit": "c"}}, False),
        (None, {"name": "now", "arguments": {"anything": [1]}}, True),
        (None, {"name": "send_email", "arguments": {}}, False),
        (None, {"arguments": {}, "name": "now"}, False),
        ("now", {"name": "now", "arguments": {}}, True),
        ("now", {"name": "get_weather", "arguments": {"city": "Paris"}}, False),
    ],
)
def test_tool_call_grammar_forces_a_known_call(
    vocab: Any, name: str | None, call: dict[str, Any], ok: bool
) -> None:
    assert accepts(vocab, tool_call_grammar([WEATHER, NOW], name), json.dumps(call)) is ok


@pytest.mark.model
def test_tools_with_same_named_defs_keep_their_own_definitions(vocab: Any) -> None:
    # The bundled converter names a ref's rule after its last segment and reuses any rule of
    # that name, so the second tool's "#/$defs/Item" would have become the first tool's Item.
    def tool(name: str, field: str, field_type: str) -> dict[str, Any]:
        item = {"type": "object", "properties": {field: {"type": field_type}}, "required": [field]}
        parameters = {
            "type": "object",
            "properties": {"item": {"$ref": "#/$defs/Item"}},
            "required": ["item"],
            "$defs": {"Item": item},
        }
        return {"type": "function", "function": {"name": name, "parameters": parameters}}

    calls = tool_call_grammar([tool("count", "n", "integer"), tool("say", "s", "string")])
    assert accepts(vocab, calls, '{"name": "count", "arguments": {"item": {"n": 3}}}')
    assert accepts(vocab, calls, '{"name": "say", "arguments": {"item": {"s": "hi"}}}')
    assert not accepts(vocab, calls, '{"name": "say", "arguments": {"item": {"n": 3}}}')


# --- a reasoning model: free reasoning, then the constrained answer ---------------------------

OPENED = ThinkingPrefix("</think>")  # the prompt opened <think>
SELF_OPENED = ThinkingPrefix("</think>", start="<think>")  # the model may write it


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Yes or no? Hm.</think>\n\nyes", True),
        ("</think>no", True),
        ("a <b> </thin </think>yes", True),  # near-misses of the marker are reasoning
        ("<</think>yes", True),
        ("Hm.</think>maybe", False),  # the answer is constrained
        ("Hm.</think>yes</think>", False),  # only the first marker ends the reasoning
        ("yes", False),  # the reasoning must end before the answer
        ("Hm. yes", False),
    ],
)
def test_the_answer_after_the_reasoning_is_constrained(vocab: Any, text: str, ok: bool) -> None:
    spec = StructuredOutput(regex="(yes|no)", thinking=OPENED)
    assert accepts(vocab, grammar(spec), text) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<think>\nHm.</think>\n\nyes", True),
        ("no", True),  # no reasoning at all
        ("Hm.</think>yes", False),  # reasoning that was not opened
    ],
)
def test_reasoning_the_model_opens_itself_is_optional(vocab: Any, text: str, ok: bool) -> None:
    spec = StructuredOutput(regex="(yes|no)", thinking=SELF_OPENED)
    assert accepts(vocab, grammar(spec), text) is ok


def test_a_json_schema_answer_after_reasoning_keeps_its_own_root_rules(vocab: Any) -> None:
    # A property named "root" must survive the renaming of the schema's start rule.
    schema = {
        "type": "object",
        "properties": {"root": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["root"],
    }
    spec = StructuredOutput(json_schema=schema, thinking=OPENED)
    assert accepts(vocab, grammar(spec), 'Nested.</think>{"root": [{"root": []}]}')
    assert not accepts(vocab, grammar(spec), 'Nested.</think>{"rot": []}')
