"""Calls a model opens on its own, in its family's format, are constrained to the tool's
schema from their opening on (issue 19, part 5): what each family's own template writes for
a turn of calls is allowed, and the same turn with an argument of the wrong type, or a call
of a function the request did not offer, is not. Free text stays free.

The grammar runs in llguidance over a vocabulary of bytes, once with the format's markers as
text and once with them as special tokens (as the families' real vocabularies have them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.chat.tool_parsers.roundtrip import CALLS, TOOLS, model_says, template
from tests.engine.byte_vocab import ByteVocab
from tether.api.endpoints.tools import opened_calls
from tether.chat.messages import Function, ToolCall
from tether.chat.tool_parsers import parser_class
from tether.engine.guidance import check, compile_grammar
from tether.engine.structured import StructuredOutput

# family template, parser, template variables, the end-of-turn texts, calls in one turn
FAMILIES: list[tuple[str, str, dict[str, Any], tuple[str, ...], int]] = [
    ("Qwen-Qwen3-0.6B", "hermes", {}, ("<|im_end|>",), 2),
    ("meta-llama-Llama-3.1-8B-Instruct", "llama3_json", {}, ("<|eot_id|>",), 1),
    ("Qwen3-Coder", "qwen3_coder", {}, ("<|im_end|>",), 2),
    ("Qwen3.5-4B", "qwen3_coder", {}, ("<|im_end|>",), 2),
    ("GLM-4.6", "glm45", {}, (), 2),
    ("GLM-4.7-Flash", "glm45", {}, (), 2),
    ("MiniMax-M2", "minimax_m2", {}, ("[e~[",), 2),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek_v3", {}, ("<｜end▁of▁sentence｜>",), 2),
    ("llama-cpp-deepseek-r1", "deepseek_v3", {}, ("<｜end▁of▁sentence｜>",), 2),
    ("deepseek-ai-DeepSeek-V3.1", "deepseek_v31", {}, ("<｜end▁of▁sentence｜>",), 2),
    ("moonshotai-Kimi-K2", "kimi_k2", {}, ("<|im_end|>",), 2),
    ("Kimi-K2-Thinking", "kimi_k2", {}, ("<|im_end|>",), 2),
    ("Mistral-Small-3.2-24B-Instruct-2506", "mistral", {"eos_token": "</s>"}, ("</s>",), 2),
    ("mistralai-Mistral-Nemo-Instruct-2407", "mistral", {"eos_token": "</s>"}, ("</s>",), 2),
    ("unsloth-mistral-Devstral-Small-2507", "mistral", {"eos_token": "</s>"}, ("</s>",), 2),
    ("openai-gpt-oss-120b", "openai", {}, ("<|return|>",), 1),
    ("google-gemma-4-31B-it", "gemma4", {}, ("<turn|>", "<|tool_response>"), 2),
]
IDS = [family[0] for family in FAMILIES]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(name, arguments, "call00009")  # an id Mistral's templates take


def spec(parser: str, tools: Sequence[Function] = tuple(TOOLS.values())) -> StructuredOutput:
    found = opened_calls(parser, tuple(tools))
    assert found is not None, f"{parser} does not constrain its calls"
    return found


def vocabularies(parser: str) -> list[ByteVocab]:
    return [ByteVocab(), ByteVocab(parser_class(parser).markers)]


def grammar(constraint: StructuredOutput, vocab: ByteVocab) -> str:
    compiled = compile_grammar(constraint, vocab.markup)
    check(compiled, vocab.tokenizer)
    return compiled


@pytest.mark.parametrize(("name", "parser", "variables", "end", "calls"), FAMILIES, ids=IDS)
def test_what_the_familys_template_writes_is_allowed_and_a_wrong_argument_is_not(
    name: str, parser: str, variables: dict[str, Any], end: tuple[str, ...], calls: int
) -> None:
    chat = template(name, **variables)
    said = model_says(chat, CALLS[:calls], end=end)
    wrong_type = model_says(chat, [call("get_weather", city="Paris", days="two")], end=end)
    missing = model_says(chat, [call("get_weather", days=2)], end=end)
    unknown = model_says(chat, [call("delete_all", city="Paris")], end=end)
    for vocab in vocabularies(parser):
        compiled = grammar(spec(parser), vocab)
        assert vocab.accepts(compiled, said), said
        assert vocab.accepts(compiled, "It is sunny in Paris today.")
        assert not vocab.accepts(compiled, wrong_type), wrong_type
        assert not vocab.accepts(compiled, missing), missing
        assert not vocab.accepts(compiled, unknown), unknown


SEARCH = Function(
    "search",
    "Search",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "order": {"enum": ["new", "old"]},
            "filters": {
                "type": "object",
                "properties": {"site": {"type": "string"}, "year": {"type": "integer"}},
                "required": ["site"],
            },
        },
        "required": ["query"],
    },
)


@pytest.mark.parametrize(
    ("name", "parser", "end"),
    [("Qwen3-Coder", "qwen3_coder", ("<|im_end|>",)), ("GLM-4.6", "glm45", ())],
)
def test_tagged_values_are_text_or_json_as_the_schema_says(
    name: str, parser: str, end: tuple[str, ...]
) -> None:
    chat = template(name)
    vocab = ByteVocab()
    compiled = grammar(spec(parser, [SEARCH]), vocab)
    good = call("search", query='a < b & "c"', order="old", filters={"site": "x", "year": 1})
    assert vocab.accepts(compiled, model_says(chat, [good], end=end))
    assert vocab.accepts(compiled, model_says(chat, [call("search", query="q")], end=end))
    for bad in (
        call("search", query="q", order="newest"),  # not one of the listed strings
        call("search", query="q", filters={"year": 1}),  # a nested required key missing
        call("search", query="q", filters="x"),  # not an object
    ):
        assert not vocab.accepts(compiled, model_says(chat, [bad], end=end)), bad


def test_gemma4_arguments_keep_their_notation_and_schema() -> None:
    chat = template("google-gemma-4-31B-it")
    end = ("<turn|>", "<|tool_response>")
    vocab = ByteVocab(parser_class("gemma4").markers)
    compiled = grammar(spec("gemma4", [SEARCH]), vocab)
    good = call("search", query="q", order="new", filters={"site": "x", "year": 2})
    assert vocab.accepts(compiled, model_says(chat, [good], end=end))
    assert vocab.accepts(compiled, model_says(chat, [call("search", query="q")], end=end))
    for bad in (
        call("search", query="q", order="newest"),
        call("search", query="q", filters={"year": 1}),
        call("search", order="new"),
    ):
        assert not vocab.accepts(compiled, model_says(chat, [bad], end=end)), bad


def test_harmony_messages_stay_free_until_a_call_opens() -> None:
    vocab = ByteVocab(parser_class("openai").markers)
    compiled = grammar(spec("openai"), vocab)
    answer = (
        "<|channel|>analysis<|message|>The user wants weather.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>"
    )
    assert vocab.accepts(compiled, answer)
    opened = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    assert vocab.accepts(compiled, opened + '{"city": "Paris"}<|call|>')
    assert not vocab.accepts(compiled, opened + '{"town": "Paris"}<|call|>')
