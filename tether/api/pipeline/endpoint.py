"""``GenerationEndpoint``: the one path every generation endpoint takes.

    accept (auth'd route, rate limits, body, model, readiness)
      → prepare (prompt text and ids, output constraint)      the endpoint's own
      → start_generation (engine checks: 400 / 503 before any byte)
      → stream: event_stream(streamer)                        the endpoint's chunks
        or collect, then respond                              the endpoint's body

Chat, completions and the legacy ``/inference`` differ only in the steps marked as their
own; each subclass fills those in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api.endpoints.tools import ToolPlan
from tether.api.pipeline.admission import accept
from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.generation import cancel_on_disconnect, start_generation
from tether.api.pipeline.prompt import Constraint
from tether.api.pipeline.results import ChoiceResult, UsageTally, collect, echo_prompt
from tether.api.pipeline.streaming import ChoiceStreamer, event_stream
from tether.api.wire import answers, chunks, requests
from tether.api.wire.objects import LogprobStyle
from tether.chat.reasoning import Reasoning

RequestT = TypeVar("RequestT", bound=requests.SamplingRequest)


@dataclass(frozen=True, slots=True)
class Prompt:
    """What an endpoint made of a request before generation."""

    text: str
    ids: list[int]
    constraint: Constraint | None
    tools: ToolPlan = field(default_factory=ToolPlan.none)
    reasoning: Reasoning | None = None  # a reasoning model's chat request


@dataclass(frozen=True, slots=True)
class Call(Generic[RequestT]):
    """One request in flight: what the endpoint's own steps are given."""

    request_id: str
    model: str
    created: int
    body: RequestT
    prompt: Prompt
    ctx: ServingContext  # the request's model's


class GenerationEndpoint(Generic[RequestT]):
    """Subclasses set ``schema`` and implement ``prepare``, ``streamer`` and ``response``."""

    schema: type[RequestT]

    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    async def create(self, request: Request) -> Response:
        timer, request_id, body, model, ctx, lease = await accept(self.ctx, request, self.schema)
        try:
            prompt = await self.prepare(ctx, body)
        except BaseException:
            lease.release()
            raise
        stream = start_generation(
            ctx, lease, body, request_id, prompt.ids, prompt.constraint, prompt.tools.markers
        )
        call = Call(request_id, model, int(time.time()), body, prompt, ctx)
        if self.streams(body):
            try:
                streamer = self.streamer(call)
            except BaseException:
                await stream.aclose()  # the lease with it
                raise
            return event_stream(stream, streamer, timer, ctx.config.keepalive_s)
        work = collect(stream, body.choices_n, timer, keep_tokens=self.keeps_tokens(body))
        results, tally = await cancel_on_disconnect(request.receive, work)
        return JSONResponse(self.response(call, results, tally))

    # -- the endpoint's own steps ---------------------------------------------------------

    async def prepare(self, ctx: ServingContext, body: RequestT) -> Prompt:
        """The prompt, for the model ``ctx`` serves."""
        raise NotImplementedError

    def streams(self, body: RequestT) -> bool:
        return bool(body.stream)

    def keeps_tokens(self, body: RequestT) -> bool:
        """Whether a non-streaming response needs every token (for logprobs)."""
        return body.top_logprobs_count is not None

    def streamer(self, call: Call[RequestT]) -> ChoiceStreamer:
        raise NotImplementedError

    def response(
        self, call: Call[RequestT], results: list[ChoiceResult], tally: UsageTally
    ) -> dict[str, Any]:
        raise NotImplementedError


class EnvelopeEndpoint(GenerationEndpoint[RequestT]):
    """Chat and completions: Together's shared chunk envelope and response body
    (``chat.completion`` / ``text.completion``). Subclasses say how one choice reads."""

    chat: bool

    def logprob_style(self, body: RequestT) -> LogprobStyle:
        return body.logprob_style

    def chunk_builder(self, call: Call[RequestT]) -> chunks.ChunkBuilder:
        return chunks.ChunkBuilder(
            call.request_id,
            call.model,
            call.created,
            chat=self.chat,
            logprobs=self.logprob_style(call.body),
        )

    def response(
        self, call: Call[RequestT], results: list[ChoiceResult], tally: UsageTally
    ) -> dict[str, Any]:
        prompt = call.prompt
        choices = self.choices(call, results, tally)  # before usage: it may count into tally
        return answers.completion_response(
            request_id=call.request_id,
            model=call.model,
            created=call.created,
            chat=self.chat,
            prompt=echo_prompt(call.ctx, call.body, prompt.text, prompt.ids, results),
            choices=choices,
            usage_=tally.wire(),
        )

    def choices(
        self, call: Call[RequestT], results: list[ChoiceResult], tally: UsageTally
    ) -> list[dict[str, Any]]:
        """The response's choices (counting into ``tally`` what only they know)."""
        return [self.choice(call, result) for result in results]

    def choice(self, call: Call[RequestT], result: ChoiceResult) -> dict[str, Any]:
        raise NotImplementedError
