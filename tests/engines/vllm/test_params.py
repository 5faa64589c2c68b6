"""Tether's requests as vLLM's sampling and structured-output parameters (no vLLM needed)."""

from __future__ import annotations

import pytest

from tether.engine.errors import InvalidRequestError, StructuredOutputError
from tether.engine.guidance import GuidanceOptions, lark, special_markup
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import (
    CallSection,
    CallShape,
    LazyCalls,
    StructuredOutput,
    ThinkingPrefix,
    ToolFunction,
)
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


def test_every_form_is_tethers_own_grammar_for_the_guidance_backend() -> None:
    """Both engines run the same compiler, so they accept and refuse the same constraints."""
    forms = [
        StructuredOutput(json_schema={"type": "object"}),
        StructuredOutput(regex="(a|b)"),
        StructuredOutput(choice=("x", "y")),
        StructuredOutput(tool_call=(ToolFunction("f", {"type": "object"}), ToolFunction("g"))),
        # vLLM's own reasoning parser is not needed: the grammar leaves the reasoning free.
        StructuredOutput(regex="a", thinking=ThinkingPrefix("</think>")),
    ]
    for spec in forms:
        fields = structured_outputs(spec)
        assert list(fields) == ["grammar"]
        assert fields["grammar"] == lark(spec)


def test_a_keyword_the_backend_cannot_enforce_is_a_400_before_vllm_sees_it() -> None:
    """vLLM's xgrammar backend failed such schemas inside the engine: a 500, and the engine
    reported dead (issue 24)."""
    for schema in ({"type": "array", "uniqueItems": True}, {"not": {"type": "integer"}}):
        with pytest.raises(StructuredOutputError, match="cannot be enforced"):
            structured_outputs(StructuredOutput(json_schema=schema))
    lenient = GuidanceOptions(lenient=True)
    spec = StructuredOutput(json_schema={"type": "array", "uniqueItems": True})
    assert structured_outputs(spec, options=lenient)["grammar"]


def test_special_tokens_of_the_model_are_matched_by_id() -> None:
    shape = CallShape(("f",), {"type": "object"}, ("<|end|>",))
    spec = StructuredOutput(lazy_calls=LazyCalls((CallSection("<|call|>", (shape,)),)))
    grammar = structured_outputs(spec, special_markup({"<|call|>": 5, "<|end|>": 6}))["grammar"]
    assert "TEXT <[5]>" in grammar
    assert '"f" %json' in grammar
    assert "<[6]>" in grammar
