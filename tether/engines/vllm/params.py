"""Tether's request → vLLM's ``SamplingParams`` (and ``StructuredOutputsParams``)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from tether.engine.errors import InvalidRequestError
from tether.engine.guidance import (
    GuidanceOptions,
    Markup,
    checked_lark,
    plain_markup,
)
from tether.engine.sampling_params import SamplingParams
from tether.engine.structured import StructuredOutput


def new_seed() -> int:
    """A seed for a request that gave none, so that the response can report it."""
    return random.getrandbits(31)


def structured_outputs(
    spec: StructuredOutput, markup: Markup = plain_markup, options: GuidanceOptions | None = None
) -> dict[str, Any]:
    """The ``StructuredOutputsParams`` fields for ``spec``: the Lark grammar Tether's own
    compiler writes (``tether.engine.guidance``), which vLLM's ``guidance`` backend runs, so
    both engines accept, enforce and refuse the same constraints. It is checked here: what
    llguidance refuses is the client's 400 before the request reaches vLLM."""
    # Checked without the tokenizer (vLLM holds it): its special tokens' ids come from it.
    return {"grammar": checked_lark(spec, markup, options)}


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
