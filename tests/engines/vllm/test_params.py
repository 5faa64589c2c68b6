"""Tether's requests as vLLM's sampling and structured-output parameters (no vLLM needed)."""

from __future__ import annotations

import pytest

from tether.engine.errors import InvalidRequestError, StructuredOutputError
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import StructuredOutput, ThinkingPrefix, ToolFunction
from tether.engines.vllm.params import sampling_kwargs, structured_outputs


def test_every_sampling_field_maps_and_logprobs_are_always_asked() -> None:
    params = SamplingParams(
        max_tokens=9,
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.1,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        logit_bias={5: -100.0},
        stop=("\n",),
        n=3,
    )
    kwargs = sampling_kwargs(params, seed=7, vocab_size=100)
    assert kwargs["n"] == 3 and kwargs["seed"] == 7 and kwargs["max_tokens"] == 9
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"], kwargs["min_p"]) == (
        0.7,
        0.9,
        40,
        0.05,
    )
    assert kwargs["logit_bias"] == {5: -100.0} and kwargs["stop"] == ["\n"]
    assert kwargs["logprobs"] == 0  # the sampled token's logprob, always
    assert kwargs["prompt_logprobs"] is None


def test_greedy_n_is_one_vllm_choice() -> None:
    kwargs = sampling_kwargs(SamplingParams(temperature=0, n=4), seed=1, vocab_size=100)
    assert kwargs["n"] == 1


def test_ignore_eos_does_not_outlive_a_complete_constraint() -> None:
    plain = SamplingParams(ignore_eos=True)
    constrained = SamplingParams(ignore_eos=True, structured=StructuredOutput(regex="a"))
    assert sampling_kwargs(plain, seed=1, vocab_size=10)["ignore_eos"] is True
    assert sampling_kwargs(constrained, seed=1, vocab_size=10)["ignore_eos"] is False


def test_out_of_vocabulary_logit_bias_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        sampling_kwargs(SamplingParams(logit_bias={100: 1.0}), seed=1, vocab_size=100)
    assert caught.value.param == "logit_bias"


def test_structured_forms() -> None:
    assert structured_outputs(StructuredOutput(json_schema={"type": "object"})) == {
        "json": {"type": "object"}
    }
    assert structured_outputs(StructuredOutput(regex="(a|b)")) == {"regex": "(a|b)"}
    assert structured_outputs(StructuredOutput(choice=("x", "y"))) == {"choice": ["x", "y"]}


def test_a_forced_tool_call_is_the_schema_of_the_call_object() -> None:
    spec = StructuredOutput(
        tool_call=(
            ToolFunction("f", {"type": "object", "properties": {"x": {}}}),
            ToolFunction("g"),
        )
    )
    schema = structured_outputs(spec)["json"]
    first, second = schema["anyOf"]
    assert first["properties"]["name"] == {"const": "f"}
    assert first["properties"]["arguments"]["properties"] == {"x": {}}
    assert second["properties"]["arguments"] == {"type": "object"}
    assert first["required"] == ["name", "arguments"]


def test_a_constraint_after_reasoning_is_refused_clearly() -> None:
    spec = StructuredOutput(regex="a", thinking=ThinkingPrefix("</think>"))
    with pytest.raises(StructuredOutputError, match="reasoning"):
        structured_outputs(spec)
