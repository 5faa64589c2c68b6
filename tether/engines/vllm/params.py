"""Tether's request → vLLM's ``SamplingParams`` (and ``StructuredOutputsParams``)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from tether.engine.errors import InvalidRequestError, StructuredOutputError
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import ANY_OBJECT, LazyCalls, StructuredOutput


def new_seed() -> int:
    """A seed for a request that gave none, so that the response can report it."""
    return random.getrandbits(31)


def structured_outputs(spec: StructuredOutput) -> dict[str, Any] | None:
    """The ``StructuredOutputsParams`` fields for ``spec`` (vLLM's structured-output
    backend compiles them); None: nothing to constrain. A forced tool call is the JSON schema
    of the call object that Tether's own parser reads: ``{"name": <a function>, "arguments":
    {...}}``. Calls the model opens itself are a structural tag (free text until a trigger,
    then a call's shape); vLLM's triggers match anywhere, so a format whose call must start
    the answer (Llama 3's bare JSON) stays unconstrained there."""
    if spec.thinking is not None:
        raise StructuredOutputError(
            "constraining a reasoning model's answer after its reasoning is not supported on "
            "the vLLM engine (it needs vLLM's reasoning parser); leave response_format out"
        )
    if spec.json_schema is not None:
        return {"json": dict(spec.json_schema)}
    if spec.regex is not None:
        return {"regex": spec.regex}
    if spec.choice is not None:
        return {"choice": list(spec.choice)}
    if spec.lazy_calls is not None:
        return _structural_tag(spec.lazy_calls)
    assert spec.tool_call is not None
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function.name},
                "arguments": dict(function.parameters or ANY_OBJECT),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for function in spec.tool_call
    ]
    return {"json": calls[0] if len(calls) == 1 else {"anyOf": calls}}


def _structural_tag(calls: LazyCalls) -> dict[str, Any] | None:
    if calls.at_start:
        return None
    structures = [
        {
            "begin": shape.begin,
            "schema": dict(shape.parameters) or dict(ANY_OBJECT),
            "end": shape.end,
        }
        for shape in calls.shapes
    ]
    tag = {"type": "structural_tag", "structures": structures, "triggers": list(calls.triggers)}
    return {"structural_tag": json.dumps(tag)}


def sampling_kwargs(params: SamplingParams, seed: int, vocab_size: int) -> Mapping[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for ``params`` (``logprobs`` is always
    asked for: every token carries its logprob in Tether's chunks)."""
    for token_id in params.logit_bias:
        if not 0 <= token_id < vocab_size:
            raise InvalidRequestError(
                f"logit_bias: token id {token_id} is not in the vocabulary (0..{vocab_size - 1})",
                "logit_bias",
            )
    kwargs: dict[str, Any] = {
        # Greedy choices are all the same: vLLM computes one (it refuses n > 1 when greedy)
        # and the stream hands it to every index.
        "n": 1 if params.greedy else params.n,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,  # 0 considers every token, as in Tether
        "min_p": params.min_p,
        "repetition_penalty": params.repetition_penalty,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "seed": seed,
        "stop": list(params.stop) or None,
        # A complete constraint ends the choice (as on llama.cpp): with ignore_eos, vLLM would
        # go on past the grammar's end unconstrained.
        "ignore_eos": params.ignore_eos
        and (params.structured is None or params.structured.lazy_calls is not None),
        "logprobs": params.logprobs or 0,
        "prompt_logprobs": 0 if params.prompt_logprobs else None,
        "logit_bias": dict(params.logit_bias) or None,
        "skip_special_tokens": True,  # but see VllmEngine._vllm_params
    }
    return kwargs
