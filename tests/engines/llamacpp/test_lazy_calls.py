"""Calls the model opens itself are constrained from their opening on (issue 19): free text
until the trigger, then arguments that match the tool's schema, with the real model."""

from __future__ import annotations

import json

import pytest

from tests.engines.llamacpp.helpers import generate
from tether.engine.structured import (
    CallSection,
    CallShape,
    LazyCalls,
    StructuredOutput,
    TaggedArguments,
    TaggedParameter,
)
from tether.engines.llamacpp.async_engine import AsyncEngine

pytestmark = pytest.mark.model

INTEGER_X = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "required": ["x"],
    "additionalProperties": False,
}
SHAPE = CallShape(('{"name": "f", "arguments": ',), INTEGER_X, ("}</tool_call>",))
LAZY = StructuredOutput(lazy_calls=LazyCalls((CallSection("<tool_call>", (SHAPE,)),)))
# Greedy decoding copies the history's call, whose argument breaks the schema.
CALL = '<tool_call>{"name": "f", "arguments": {"x": "one"}}</tool_call>'
PROMPT = f"Call f.\nA: {CALL}\nCall f.\nA: {CALL}\nCall f.\nA:"


async def test_every_call_the_model_opens_gets_arguments_that_match_the_schema(
    model_engine: AsyncEngine,
) -> None:
    free = await generate(model_engine, PROMPT, max_tokens=24, temperature=0)
    lazy = await generate(model_engine, PROMPT, max_tokens=128, temperature=0, structured=LAZY)

    assert '"x": "one"' in free[0].text  # unconstrained, the copy breaks the schema
    before, *calls = lazy[0].text.split("<tool_call>")
    assert free[0].text.startswith(before)  # free text until the call opens
    whole = [call.split("</tool_call>")[0] for call in calls if "</tool_call>" in call]
    assert len(whole) >= 2  # the model goes on copying: its next call is constrained too
    for body in whole:
        assert isinstance(json.loads(body)["arguments"]["x"], int)


async def test_a_model_that_writes_no_call_is_not_constrained(
    model_engine: AsyncEngine,
) -> None:
    prompt = "The capital of France is"
    free = await generate(model_engine, prompt, max_tokens=8, temperature=0)
    lazy = await generate(model_engine, prompt, max_tokens=8, temperature=0, structured=LAZY)
    assert lazy[0].text == free[0].text


# Qwen3-Coder's XML form: each value bare text, typed by the tool's schema.
XML_SHAPE = CallShape(
    ("\n<function=f>\n",),
    INTEGER_X,
    ("</function>\n",),
    TaggedArguments(
        ("<parameter=",),
        (">\n",),
        ("\n</parameter>", "\n"),
        (TaggedParameter("x", {"type": "integer"}, required=True, text=False),),
    ),
)
XML_LAZY = StructuredOutput(
    lazy_calls=LazyCalls((CallSection("<tool_call>", (XML_SHAPE,), closer=("</tool_call>",)),))
)
XML_CALL = "<tool_call>\n<function=f>\n<parameter=x>\none\n</parameter>\n</function>\n</tool_call>"
XML_PROMPT = f"Call f.\nA: {XML_CALL}\nCall f.\nA: {XML_CALL}\nCall f.\nA:"


async def test_a_call_in_tags_gets_values_of_the_schemas_types(model_engine: AsyncEngine) -> None:
    free = await generate(model_engine, XML_PROMPT, max_tokens=40, temperature=0)
    lazy = await generate(
        model_engine, XML_PROMPT, max_tokens=40, temperature=0, structured=XML_LAZY
    )

    assert "<parameter=x>\none\n</parameter>" in free[0].text  # the copy breaks the schema
    before, _, call = lazy[0].text.partition("<tool_call>")
    assert free[0].text.startswith(before)
    value = call.split("<parameter=x>\n", 1)[1].split("\n</parameter>", 1)[0]
    assert isinstance(json.loads(value), int)
