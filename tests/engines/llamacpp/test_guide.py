"""Structured output on llguidance with the real model (issue 24): the schema's promise
holds, and tokens the grammar forces are decoded without sampling, each still handed out with
its own logprob."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jsonschema
import pytest

from tests.engines.llamacpp.helpers import chat, generate
from tether.engine.request import FinishReason
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.sampler import live_samplers

pytestmark = pytest.mark.model


def _prop(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: schema},
        "required": [name],
        "additionalProperties": False,
    }


# The issue's table: what GBNF answered broke each of these.
ISSUE_SCHEMAS = {
    "integer bounds": _prop("rating", {"type": "integer", "minimum": 1, "maximum": 5}),
    "exclusive bounds": _prop(
        "p", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
    ),
    "patternProperties": {
        "type": "object",
        "patternProperties": {"^x_": {"type": "string", "maxLength": 20}},
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 2,
    },
    "email": _prop("email", {"type": "string", "format": "email", "maxLength": 40}),
}


@pytest.mark.parametrize("schema", ISSUE_SCHEMAS.values(), ids=ISSUE_SCHEMAS.keys())
async def test_greedy_output_keeps_the_schemas_promise(
    model_engine: AsyncEngine, schema: dict[str, Any]
) -> None:
    out = (
        await generate(
            model_engine,
            chat("Answer with a JSON object."),
            max_tokens=96,
            temperature=0,
            structured=StructuredOutput(json_schema=schema),
        )
    )[0]
    if out.last.finish_reason is FinishReason.LENGTH:
        # The small model writes a number's digits until max_tokens (JSON numbers have no
        # length limit): what it wrote is still within the bounds.
        assert "exclusiveMinimum" in json.dumps(schema)
        digits = re.fullmatch(r'\{"p": (0\.\d+)', out.text)
        assert digits is not None and 0 < float(digits[1]) < 1
        return
    assert out.last.finish_reason is FinishReason.STOP
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(json.loads(out.text))


PERSON = {
    "type": "object",
    "properties": {
        "first_name": {"type": "string", "maxLength": 12},
        "last_name": {"type": "string", "maxLength": 12},
        "country": {"enum": ["France", "Japan"]},
    },
    "required": ["first_name", "last_name", "country"],
    "additionalProperties": False,
}


async def test_forced_tokens_are_decoded_without_sampling_and_carry_their_logprobs(
    model_engine: AsyncEngine,
) -> None:
    before = model_engine.core.decode_timing.steps
    out = (
        await generate(
            model_engine,
            chat("Describe a person in JSON."),
            max_tokens=64,
            temperature=0,
            logprobs=1,
            structured=StructuredOutput(json_schema=PERSON),
        )
    )[0]
    steps = model_engine.core.decode_timing.steps - before
    tokens = [token for step in out.outputs for token in step.tokens]

    person = json.loads(out.text)
    assert set(person) == {"first_name", "last_name", "country"}
    assert out.text.startswith('{"first_name": "')
    assert '", "last_name": "' in out.text
    assert "".join(token.text for token in tokens) == out.text
    assert all(len(step.tokens) <= 1 for step in out.outputs)  # streamed one by one
    assert out.last.completion_tokens == len(tokens)
    # `{"first_name": "` and `", "last_name": "` (and more) cost no sampling step of their
    # own: far fewer decode steps than tokens.
    assert steps < len(tokens) - 5
    for token in tokens:
        assert math.isfinite(token.logprob) and token.logprob <= 0
        assert token.top_logprobs is not None and len(token.top_logprobs) == 1
    # Their logprobs are the model's own, not a placeholder.
    assert any(token.logprob < -1e-3 for token in tokens)


async def test_a_constraint_whose_grammar_ends_ends_the_choice_at_once(
    model_engine: AsyncEngine,
) -> None:
    before = live_samplers()
    out = await generate(
        model_engine,
        chat("Pick a country."),
        max_tokens=32,
        temperature=0,
        structured=StructuredOutput(json_schema={"enum": ["France", "Japan"]}),
        n=2,
    )
    for choice in out:
        assert choice.text in {'"France"', '"Japan"'}
        assert choice.last.finish_reason is FinishReason.STOP
    assert live_samplers() == before

    # No step is spent on an end token: after the prompt's step, one decode step per token
    # but the last, whose row would only have said "end".
    steps = model_engine.stats().decode_steps.steps
    [one] = await generate(
        model_engine,
        chat("Pick a country."),
        max_tokens=32,
        temperature=0,
        structured=StructuredOutput(json_schema={"enum": ["France", "Japan"]}),
    )
    assert model_engine.stats().decode_steps.steps - steps == len(one.token_ids) - 1
