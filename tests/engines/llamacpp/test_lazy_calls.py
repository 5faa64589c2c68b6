"""Calls the model opens itself are constrained from their opening on (issue 19): free text
until the trigger, then arguments that match the tool's schema, with the real model."""

from __future__ import annotations

import json

import pytest

from tests.engines.llamacpp.helpers import generate
from tether.engine.structured import CallShape, LazyCalls, StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine

pytestmark = pytest.mark.model

INTEGER_X = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "required": ["x"],
    "additionalProperties": False,
}
SHAPE = CallShape('<tool_call>{"name": "f", "arguments": ', INTEGER_X, "}</tool_call>")
LAZY = StructuredOutput(lazy_calls=LazyCalls(("<tool_call>",), (SHAPE,)))
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
