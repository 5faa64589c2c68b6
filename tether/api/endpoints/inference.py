"""``POST /inference`` and ``/api/inference``: Together's legacy completion endpoint.

Streams when ``stream_tokens`` (or ``stream``) is true, in the old TGI-like chunk shape
(wire-contract.md "Legacy /inference stream"); otherwise answers with the old
``status``/``output`` shape and a completions-style top level in one body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.endpoint import Call, GenerationEndpoint, Prompt
from tether.api.pipeline.prompt import response_format_constraint, tokenize_prompt
from tether.api.pipeline.results import ChoiceResult, UsageTally
from tether.api.pipeline.streaming import ChoiceStreamer, Chunk, last_token
from tether.api.wire import answers, chunks, objects, requests
from tether.engine.request import StepOutput, TokenInfo


class InferenceStreamer(ChoiceStreamer):
    """Legacy chunks; each choice's finishing chunk carries its whole ``generated_text``."""

    def __init__(self, builder: chunks.InferenceChunkBuilder, n: int, include_usage: bool) -> None:
        super().__init__(n, include_usage)
        self._builder = builder
        self._texts: list[list[str]] = [[] for _ in range(n)]

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenInfo]) -> Chunk:
        self._texts[index].append(text)
        return self._builder.text(index, text, last_token(tokens))

    def finish_chunk(self, out: StepOutput, reason: str, usage: objects.Usage | None) -> Chunk:
        generated = ("".join(self._texts[out.index]), out.completion_tokens)
        return self._builder.finish(out.index, reason, out.seed, generated, usage)

    def usage_chunk(self, usage: objects.Usage) -> Chunk:
        return self._builder.usage_only(usage)


class InferenceService(GenerationEndpoint[requests.InferenceRequest]):
    schema = requests.InferenceRequest

    async def prepare(self, ctx: ServingContext, body: requests.InferenceRequest) -> Prompt:
        constraint = response_format_constraint(body.response_format)
        ids = await tokenize_prompt(ctx.engine, body.prompt)
        return Prompt(body.prompt, ids, constraint)

    def streams(self, body: requests.InferenceRequest) -> bool:
        return body.streaming

    def keeps_tokens(self, body: requests.InferenceRequest) -> bool:
        return False  # the legacy body carries no logprobs

    def streamer(self, call: Call[requests.InferenceRequest]) -> ChoiceStreamer:
        builder = chunks.InferenceChunkBuilder(call.request_id)
        return InferenceStreamer(builder, call.body.choices_n, call.body.include_usage)

    def response(
        self,
        call: Call[requests.InferenceRequest],
        results: list[ChoiceResult],
        tally: UsageTally,
    ) -> dict[str, Any]:
        choices = [
            answers.inference_choice(result.index, result.text, result.finish_reason.value)
            for result in results
        ]
        return answers.inference_response(
            request_id=call.request_id,
            model=call.model,
            created=call.created,
            prompt=call.body.prompt,
            args=call.body.args(),
            choices=choices,
            usage_=tally.wire(),
        )
