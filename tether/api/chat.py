"""``POST /v1/chat/completions``: messages → chat template → engine → chunks or one response."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api import protocol
from tether.api.errors import InvalidRequest
from tether.api.serving import (
    ChoiceResult,
    Constraint,
    ServingContext,
    accept,
    cancel_on_disconnect,
    collect,
    echo_prompt,
    render_chat_prompt,
    response_format_constraint,
    start_generation,
)
from tether.api.streaming import Chunk, EnvelopeStreamer, event_stream, last_token
from tether.api.tool_calls import ToolPlan, streamed_tool_call_deltas, wire_tool_calls
from tether.chat.tool_calls import ParsedCall
from tether.engine.request import FinishReason, StepOutput


class ChatStreamer(EnvelopeStreamer):
    """Chat chunks; with tools, each choice's text goes through a ``ToolCallBuffer``."""

    def __init__(
        self, builder: protocol.ChunkBuilder, n: int, include_usage: bool, plan: ToolPlan
    ) -> None:
        super().__init__(builder, n, include_usage)
        buffers = [plan.buffer() for _ in range(n)]
        self._buffers = None if plan.mode == "none" else [b for b in buffers if b is not None]

    def on_output(self, out: StepOutput) -> list[Chunk]:
        if self._buffers is None:
            return super().on_output(out)
        buffer = self._buffers[out.index]
        token = last_token(out)
        text = buffer.feed(out.text) if out.text else ""
        chunks = [self.text_chunk(out.index, text, token)] if text else []
        if out.finish_reason is None:
            return chunks
        held, calls = buffer.finish()
        if held:
            chunks.append(self.text_chunk(out.index, held, token))
        reason = out.finish_reason.value
        if calls:
            chunks.extend(self._tool_call_chunks(out.index, calls))
            reason = FinishReason.TOOL_CALLS.value
        chunks.append(self.finish_chunk(out, reason, self.finish_usage(out)))
        return chunks

    def _tool_call_chunks(self, index: int, calls: list[ParsedCall]) -> list[Chunk]:
        role = self.builder.text(index, "", None)
        deltas = streamed_tool_call_deltas(calls)
        return [role, *(self.builder.tool_calls(index, delta) for delta in deltas)]


def _constraint(plan: ToolPlan, fmt: protocol.ResponseFormat | None) -> Constraint | None:
    if plan.structured is not None and fmt is not None and fmt.type != "text":
        raise InvalidRequest(
            "response_format: cannot be combined with a forced tool_choice", "response_format"
        )
    if plan.structured is not None:
        return Constraint(plan.structured, "tools")
    return response_format_constraint(fmt)


def _choice(result: ChoiceResult, plan: ToolPlan, logprobs: bool) -> dict[str, Any]:
    lp = protocol.logprobs_object(result.logprob_tokens) if logprobs else None
    text = result.text
    calls = plan.parse(text)
    if calls:
        tool_calls = wire_tool_calls(calls)
        return protocol.chat_choice(result.index, None, tool_calls, "tool_calls", result.seed, lp)
    reason = result.finish_reason.value
    return protocol.chat_choice(result.index, text, [], reason, result.seed, lp)


class ChatService:
    def __init__(self, ctx: ServingContext) -> None:
        self._ctx = ctx

    async def create(self, request: Request) -> Response:
        ctx = self._ctx
        timer, rid, req, model = await accept(ctx, request, protocol.ChatCompletionRequest)
        plan = ToolPlan.from_request(req.tools, req.tool_choice)
        constraint = _constraint(plan, req.response_format)
        messages = [message.to_chat(index) for index, message in enumerate(req.messages)]
        prompt, ids = await render_chat_prompt(ctx, messages, plan.functions)
        stream = start_generation(ctx, req, rid, ids, constraint)
        created = int(time.time())
        if req.stream:
            builder = protocol.ChunkBuilder(rid, model, created, chat=True)
            streamer = ChatStreamer(builder, req.choices_n, req.include_usage, plan)
            return event_stream(stream, streamer, timer, ctx.config.keepalive_s)
        logprobs = req.top_logprobs_count is not None
        work = collect(stream, req.choices_n, timer, keep_tokens=logprobs)
        results, tally = await cancel_on_disconnect(request.receive, work)
        return JSONResponse(
            protocol.completion_response(
                request_id=rid,
                model=model,
                created=created,
                chat=True,
                prompt=echo_prompt(ctx, req, prompt, ids),
                choices=[_choice(result, plan, logprobs) for result in results],
                usage_=tally.wire(),
            )
        )
