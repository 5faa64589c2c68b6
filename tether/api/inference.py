"""``POST /inference`` and ``/api/inference``: Together's legacy completion endpoint.

Streams when ``stream_tokens`` (or ``stream``) is true, in the old TGI-like chunk shape
(wire-contract.md "Legacy /inference stream"); otherwise answers with the old
``status``/``output`` shape and a completions-style top level in one body.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api import protocol
from tether.api.serving import (
    ServingContext,
    accept,
    cancel_on_disconnect,
    collect,
    response_format_constraint,
    start_generation,
    tokenize_prompt,
)
from tether.api.streaming import ChoiceStreamer, Chunk, event_stream
from tether.engine.request import StepOutput, TokenInfo


class InferenceStreamer(ChoiceStreamer):
    """Legacy chunks; each choice's finishing chunk carries its whole ``generated_text``."""

    def __init__(
        self, builder: protocol.InferenceChunkBuilder, n: int, include_usage: bool
    ) -> None:
        super().__init__(n, include_usage)
        self._builder = builder
        self._texts: list[list[str]] = [[] for _ in range(n)]

    def text_chunk(self, index: int, text: str, token: TokenInfo | None) -> Chunk:
        self._texts[index].append(text)
        return self._builder.text(index, text, token)

    def finish_chunk(self, out: StepOutput, reason: str, usage: dict[str, int] | None) -> Chunk:
        generated = ("".join(self._texts[out.index]), out.completion_tokens)
        return self._builder.finish(out.index, reason, out.seed, generated, usage)

    def usage_chunk(self, usage: dict[str, int]) -> Chunk:
        return self._builder.usage_only(usage)


class InferenceService:
    def __init__(self, ctx: ServingContext) -> None:
        self._ctx = ctx

    async def create(self, request: Request) -> Response:
        ctx = self._ctx
        timer, rid, req, model = await accept(ctx, request, protocol.InferenceRequest)
        constraint = response_format_constraint(req.response_format)
        ids = await tokenize_prompt(ctx.engine, req.prompt)
        stream = start_generation(ctx, req, rid, ids, constraint)
        if req.streaming:
            builder = protocol.InferenceChunkBuilder(rid)
            streamer = InferenceStreamer(builder, req.choices_n, req.include_usage)
            return event_stream(stream, streamer, timer, ctx.config.keepalive_s)
        work = collect(stream, req.choices_n, timer, keep_tokens=False)
        results, tally = await cancel_on_disconnect(request.receive, work)
        choices = [
            protocol.inference_choice(result.index, result.text, result.finish_reason.value)
            for result in results
        ]
        return JSONResponse(
            protocol.inference_response(
                request_id=rid,
                model=model,
                created=int(time.time()),
                prompt=req.prompt,
                args=req.args(),
                choices=choices,
                usage_=tally.wire(),
            )
        )
