"""``POST /v1/chat/completions``: messages → chat template → engine → chunks or one response."""

from __future__ import annotations

from typing import Any

from tether.api import requests, responses
from tether.api.endpoint import Call, EnvelopeEndpoint, Prompt
from tether.api.errors import InvalidRequest
from tether.api.serving import (
    ChoiceResult,
    Constraint,
    render_chat_prompt,
    response_format_constraint,
)
from tether.api.streaming import ChoiceStreamer, Chunk, EnvelopeStreamer
from tether.api.tool_calls import ToolPlan, streamed_tool_call_deltas, wire_tool_calls
from tether.chat.tool_calls import ParsedCall
from tether.engine.request import FinishReason, StepOutput


class ChatStreamer(EnvelopeStreamer):
    """Chat chunks; with tools, each choice's text goes through a ``ToolCallBuffer``."""

    def __init__(
        self, builder: responses.ChunkBuilder, n: int, include_usage: bool, plan: ToolPlan
    ) -> None:
        super().__init__(builder, n, include_usage)
        buffers = [plan.buffer() for _ in range(n)]
        self._buffers = None if plan.mode == "none" else [b for b in buffers if b is not None]

    def on_output(self, out: StepOutput) -> list[Chunk]:
        if self._buffers is None:
            return super().on_output(out)
        buffer = self._buffers[out.index]
        text = buffer.feed(out.text) if out.text else ""
        chunks = [self.text_chunk(out.index, text, out.tokens)] if text else []
        if out.finish_reason is None:
            return chunks
        held, calls = buffer.finish()
        if held:
            chunks.append(self.text_chunk(out.index, held, out.tokens))
        reason = out.finish_reason.value
        if calls:
            chunks.extend(self._tool_call_chunks(out.index, calls))
            reason = FinishReason.TOOL_CALLS.value
        chunks.append(self.finish_chunk(out, reason, self.finish_usage(out)))
        return chunks

    def _tool_call_chunks(self, index: int, calls: list[ParsedCall]) -> list[Chunk]:
        role = self.builder.text(index, "", ())
        deltas = streamed_tool_call_deltas(calls)
        return [role, *(self.builder.tool_calls(index, delta) for delta in deltas)]


def _constraint(plan: ToolPlan, fmt: requests.ResponseFormat | None) -> Constraint | None:
    if plan.structured is not None and fmt is not None and fmt.type != "text":
        raise InvalidRequest(
            "response_format: cannot be combined with a forced tool_choice", "response_format"
        )
    if plan.structured is not None:
        return Constraint(plan.structured, "tools")
    return response_format_constraint(fmt)


class ChatService(EnvelopeEndpoint[requests.ChatCompletionRequest]):
    schema = requests.ChatCompletionRequest
    chat = True

    async def prepare(self, body: requests.ChatCompletionRequest) -> Prompt:
        plan = ToolPlan.from_request(body.tools, body.tool_choice)
        constraint = _constraint(plan, body.response_format)
        messages = [message.to_chat(index) for index, message in enumerate(body.messages)]
        text, ids = await render_chat_prompt(self.ctx, messages, plan.functions)
        return Prompt(text, ids, constraint, plan)

    def streamer(self, call: Call[requests.ChatCompletionRequest]) -> ChoiceStreamer:
        body = call.body
        builder = self.chunk_builder(call)
        return ChatStreamer(builder, body.choices_n, body.include_usage, call.prompt.tools)

    def choice(
        self, call: Call[requests.ChatCompletionRequest], result: ChoiceResult
    ) -> dict[str, Any]:
        tokens = result.logprob_tokens
        style = call.body.logprob_style
        lp: responses.Logprobs | dict[str, Any] | None = None
        if style == "together":
            lp = responses.logprobs_object(tokens)
        elif style == "openai":
            lp = responses.openai_logprobs_object(tokens)
        calls = call.prompt.tools.parse(result.text)
        if calls:
            tool_calls = wire_tool_calls(calls)
            return responses.chat_choice(
                result.index, None, tool_calls, "tool_calls", result.seed, lp
            )
        reason = result.finish_reason.value
        return responses.chat_choice(result.index, result.text, [], reason, result.seed, lp)
