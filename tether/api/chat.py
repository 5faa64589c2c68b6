"""``POST /v1/chat/completions``: messages → chat template → engine → chunks or one response."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tether.api import requests, responses
from tether.api.endpoint import Call, EnvelopeEndpoint, Prompt
from tether.api.errors import InvalidRequest
from tether.api.serving import (
    ChoiceResult,
    Constraint,
    UsageTally,
    render_chat_prompt,
    response_format_constraint,
)
from tether.api.streaming import ChoiceStreamer, Chunk, EnvelopeStreamer
from tether.api.tool_calls import ToolPlan, streamed_tool_call_deltas, wire_tool_calls
from tether.chat.output import ChoiceReader, Piece
from tether.chat.reasoning import Reasoning
from tether.chat.tool_calls import ParsedCall
from tether.engine.request import FinishReason, StepOutput, TokenInfo
from tether.engine.structured import ThinkingPrefix


class ChatStreamer(EnvelopeStreamer):
    """Chat chunks. With a reasoning model or tools, each choice is read by a
    ``ChoiceReader``: reasoning streams as ``delta.reasoning``, content that may be a tool
    call is held back, and calls become ``delta.tool_calls`` at the end."""

    def __init__(
        self,
        builder: responses.ChunkBuilder,
        n: int,
        include_usage: bool,
        plan: ToolPlan,
        reasoning: Reasoning | None,
    ) -> None:
        super().__init__(builder, n, include_usage)
        plain = plan.mode == "none" and reasoning is None
        self._readers = (
            None if plain else [ChoiceReader(reasoning, plan.buffer()) for _ in range(n)]
        )
        # Tokens whose text is held back: they name (and give logprobs to) the next chunk.
        self._pending: list[list[TokenInfo]] = [[] for _ in range(n)]

    def on_output(self, out: StepOutput) -> list[Chunk]:
        if self._readers is None:
            return super().on_output(out)
        index = out.index
        reader = self._readers[index]
        self._pending[index].extend(out.tokens)
        chunks = self._piece_chunks(index, reader.feed(out.text, len(out.tokens)))
        if out.finish_reason is None:
            return chunks
        pieces, calls = reader.finish()
        chunks += self._piece_chunks(index, pieces)
        if reader.reasoning_tokens is not None:
            self._tally.add_reasoning(reader.reasoning_tokens)
        reason = out.finish_reason.value
        if calls:
            chunks.extend(self._tool_call_chunks(index, calls))
            reason = FinishReason.TOOL_CALLS.value
        chunks.append(self.finish_chunk(out, reason, self.finish_usage(out)))
        return chunks

    def _piece_chunks(self, index: int, pieces: list[Piece]) -> list[Chunk]:
        """A chunk per piece; the tokens not yet sent (whose text was held back, then the
        ones that released these pieces) go with the first."""
        chunks: list[Chunk] = []
        for part, text in pieces:
            tokens = self._pending[index]
            reasoning = part == "reasoning"
            chunks.append(self.builder.text(index, text, tokens, reasoning=reasoning))
            self._pending[index] = []
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


def _after_reasoning(constraint: Constraint, reasoning: Reasoning) -> Constraint:
    """A reasoning model's constraint applies to its answer; its reasoning stays free."""
    markers = reasoning.markers
    prefix = ThinkingPrefix(markers.end, None if reasoning.opened else markers.start)
    return Constraint(replace(constraint.spec, thinking=prefix), constraint.field)


class ChatService(EnvelopeEndpoint[requests.ChatCompletionRequest]):
    schema = requests.ChatCompletionRequest
    chat = True

    async def prepare(self, body: requests.ChatCompletionRequest) -> Prompt:
        plan = ToolPlan.from_request(body.tools, body.tool_choice)
        constraint = _constraint(plan, body.response_format)
        messages = [message.to_chat(index) for index, message in enumerate(body.messages)]
        prompt = await render_chat_prompt(self.ctx, messages, plan.functions, body)
        if constraint is not None and prompt.reasoning is not None:
            constraint = _after_reasoning(constraint, prompt.reasoning)
        return Prompt(prompt.text, prompt.ids, constraint, plan, prompt.reasoning)

    def streamer(self, call: Call[requests.ChatCompletionRequest]) -> ChoiceStreamer:
        body = call.body
        builder = self.chunk_builder(call)
        prompt = call.prompt
        return ChatStreamer(
            builder, body.choices_n, body.include_usage, prompt.tools, prompt.reasoning
        )

    def choices(
        self,
        call: Call[requests.ChatCompletionRequest],
        results: list[ChoiceResult],
        tally: UsageTally,
    ) -> list[dict[str, Any]]:
        reasoning = call.prompt.reasoning
        if reasoning is None:
            return super().choices(call, results, tally)
        choices = []
        for result in results:
            thought, content, tokens = reasoning.split(result.outputs())
            tally.add_reasoning(tokens)
            choice = self.choice(call, result, content)
            choices.append(responses.add_reasoning(choice, thought))
        return choices

    def choice(
        self,
        call: Call[requests.ChatCompletionRequest],
        result: ChoiceResult,
        content: str | None = None,
    ) -> dict[str, Any]:
        """One choice; ``content`` is the answer's text when it is not all of the text."""
        text = result.text if content is None else content
        tokens = result.logprob_tokens
        style = call.body.logprob_style
        lp: responses.Logprobs | dict[str, Any] | None = None
        if style == "together":
            lp = responses.logprobs_object(tokens)
        elif style == "openai":
            lp = responses.openai_logprobs_object(tokens)
        calls = call.prompt.tools.parse(text)
        if calls:
            tool_calls = wire_tool_calls(calls)
            return responses.chat_choice(
                result.index, None, tool_calls, "tool_calls", result.seed, lp
            )
        reason = result.finish_reason.value
        return responses.chat_choice(result.index, text, [], reason, result.seed, lp)
