"""``POST /v1/completions``: raw prompt → engine → chunks or one ``text.completion``.

``echo`` follows Together, not OpenAI: the prompt comes back in the response's ``prompt``
field (``[{"text", "logprobs"}]``) and ``choices[].text`` is the completion alone. OpenAI
prepends the prompt to ``text``; doing both would hand Together clients the prompt twice.
A streamed response does not echo.
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
    echo_prompt,
    response_format_constraint,
    start_generation,
    tokenize_prompt,
)
from tether.api.streaming import EnvelopeStreamer, event_stream


class CompletionService:
    def __init__(self, ctx: ServingContext) -> None:
        self._ctx = ctx

    async def create(self, request: Request) -> Response:
        ctx = self._ctx
        timer, rid, req, model = await accept(ctx, request, protocol.CompletionRequest)
        constraint = response_format_constraint(req.response_format)
        ids = await tokenize_prompt(ctx.engine, req.prompt_text)
        stream = start_generation(ctx, req, rid, ids, constraint)
        created = int(time.time())
        if req.stream:
            builder = protocol.ChunkBuilder(rid, model, created, chat=False)
            streamer = EnvelopeStreamer(builder, req.choices_n, req.include_usage)
            return event_stream(stream, streamer, timer, ctx.config.keepalive_s)
        logprobs = req.top_logprobs_count is not None
        work = collect(stream, req.choices_n, timer, keep_tokens=logprobs)
        results, tally = await cancel_on_disconnect(request.receive, work)
        choices = [
            protocol.completion_choice(
                result.index,
                result.text,
                result.finish_reason.value,
                result.seed,
                protocol.logprobs_object(result.logprob_tokens) if logprobs else None,
            )
            for result in results
        ]
        return JSONResponse(
            protocol.completion_response(
                request_id=rid,
                model=model,
                created=created,
                chat=False,
                prompt=echo_prompt(ctx, req, req.prompt_text, ids),
                choices=choices,
                usage_=tally.wire(),
            )
        )
