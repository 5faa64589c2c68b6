"""``POST /v1/chat/completions``: messages → chat template → engine → chunks or one response."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tether.api.endpoints.tools import ToolPlan, wire_tool_calls
from tether.api.errors import InvalidRequest
from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.endpoint import Call, EnvelopeEndpoint, Prompt
from tether.api.pipeline.prompt import Constraint, render_chat_prompt, response_format_constraint
from tether.api.pipeline.results import ChoiceResult, UsageTally
from tether.api.pipeline.streaming import ChoiceStreamer, Chunk, EnvelopeStreamer
from tether.api.wire import answers, objects, requests
from tether.api.wire.chunks import ChunkBuilder, tool_call_arguments, tool_call_start
from tether.chat.reasoning import Reasoning
from tether.chat.tool_parsers.base import CallArguments, CallStart, Event, ReadChoice
from tether.engine.request import FinishReason, StepOutput, TokenInfo
from tether.engine.structured import ThinkingPrefix


class ChatStreamer(EnvelopeStreamer):
    """Chat chunks. With a reasoning model or tools, each choice is read by a
    ``ChoiceReader``: reasoning streams as ``delta.reasoning``, content that may be a tool
    call is held back, and a call streams as ``delta.tool_calls``: its id and name first, then
    its arguments (wire-contract.md "Chat chunk")."""

    def __init__(
        self,
        builder: ChunkBuilder,
        n: int,
        include_usage: bool,
        plan: ToolPlan,
        reasoning: Reasoning | None,
    ) -> None:
        super().__init__(builder, n, include_usage)
        readers = [plan.reader(reasoning) for _ in range(n)]
        self._readers = None if readers[0] is None else readers
        self._call_ids = plan.call_ids
        # Tokens whose text is held back: they name (and give logprobs to) the next chunk.
        self._pending: list[list[TokenInfo]] = [[] for _ in range(n)]

    def on_output(self, out: StepOutput) -> list[Chunk]:
        if self._readers is None:
            return super().on_output(out)
        index = out.index
        reader = self._readers[index]
        assert reader is not None
        self._pending[index].extend(out.tokens)
        chunks = self._event_chunks(index, reader.feed(out.text, len(out.tokens)))
        if out.finish_reason is None:
            return chunks
        chunks += self._event_chunks(index, reader.finish())
        if reader.reasoning_tokens is not None:
            self._tally.add_reasoning(reader.reasoning_tokens)
        reason = FinishReason.TOOL_CALLS.value if reader.calls else out.finish_reason.value
        chunks.append(self.finish_chunk(out, reason, self.finish_usage(out)))
        return chunks

    def _event_chunks(self, index: int, events: list[Event]) -> list[Chunk]:
        """A chunk per event; the tokens not yet sent (whose text was held back, then the
        ones that released these events) go with the first text chunk."""
        chunks: list[Chunk] = []
        for event in events:
            if isinstance(event, CallStart):
                if self._pending[index]:  # the call's tokens, with their logprobs
                    chunks.append(self.builder.text(index, "", self._pending[index]))
                    self._pending[index] = []
                call_id = event.id or self._call_ids.new()
                delta = tool_call_start(event.index, call_id, event.name)
                chunks.append(self.builder.tool_calls(index, [delta]))
            elif isinstance(event, CallArguments):
                delta = tool_call_arguments(event.index, event.delta)
                chunks.append(self.builder.tool_calls(index, [delta]))
            else:
                part, text = event
                tokens = self._pending[index]
                reasoning = part == "reasoning"
                chunks.append(self.builder.text(index, text, tokens, reasoning=reasoning))
                self._pending[index] = []
        return chunks


def _constraint(plan: ToolPlan, fmt: requests.ResponseFormat | None) -> Constraint | None:
    """A forced call's grammar; else the ``response_format``; else, with tools, the calls the
    model may open in its own format (free text until it does)."""
    if plan.mode == "forced" and fmt is not None and fmt.type != "text":
        raise InvalidRequest(
            "response_format: cannot be combined with a forced tool_choice", "response_format"
        )
    answer = None if plan.mode == "forced" else response_format_constraint(fmt)
    if answer is None and plan.structured is not None:
        return Constraint(plan.structured, "tools")
    return answer


def _after_reasoning(constraint: Constraint, reasoning: Reasoning) -> Constraint:
    """A reasoning model's constraint applies to its answer; its reasoning stays free. Calls
    the model opens are constrained wherever they open (a call may end reasoning), and the
    reasoning's markers are part of the free text."""
    markers = reasoning.markers
    lazy = constraint.spec.lazy_calls
    if lazy is not None:
        more = replace(lazy, markers=(*lazy.markers, markers.start, markers.end))
        return Constraint(replace(constraint.spec, lazy_calls=more), constraint.field)
    prefix = ThinkingPrefix(markers.end, None if reasoning.opened else markers.start)
    return Constraint(replace(constraint.spec, thinking=prefix), constraint.field)


class ChatService(EnvelopeEndpoint[requests.ChatCompletionRequest]):
    schema = requests.ChatCompletionRequest
    chat = True

    async def prepare(self, ctx: ServingContext, body: requests.ChatCompletionRequest) -> Prompt:
        plan = ToolPlan.from_request(body.tools, body.tool_choice, ctx.chat)
        constraint = _constraint(plan, body.response_format)
        messages = [message.to_chat(index) for index, message in enumerate(body.messages)]
        prompt = await render_chat_prompt(ctx, messages, plan.functions, body)
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
        plan, reasoning = call.prompt.tools, call.prompt.reasoning
        if plan.reader(reasoning) is None:
            return super().choices(call, results, tally)
        choices = []
        for result in results:
            reader = plan.reader(reasoning)
            assert reader is not None
            read = reader.read(result.outputs())
            if reader.reasoning_tokens is not None:
                tally.add_reasoning(reader.reasoning_tokens)
            choice = self.choice(call, result, read)
            if reader.reasoning_tokens is not None:
                choice = answers.add_reasoning(choice, read.reasoning)
            choices.append(choice)
        return choices

    def choice(
        self,
        call: Call[requests.ChatCompletionRequest],
        result: ChoiceResult,
        read: ReadChoice | None = None,
    ) -> dict[str, Any]:
        """One choice; ``read`` is its text as reasoning, content and calls, when it was read
        (with tools or a reasoning model)."""
        tokens = result.logprob_tokens
        style = call.body.logprob_style
        lp: objects.Logprobs | dict[str, Any] | None = None
        if style == "together":
            lp = objects.logprobs_object(tokens)
        elif style == "openai":
            lp = objects.openai_logprobs_object(tokens)
        if read is not None and read.calls:
            tool_calls = wire_tool_calls(read.calls, call.prompt.tools.call_ids)
            return answers.chat_choice(
                result.index, read.content or None, tool_calls, "tool_calls", result.seed, lp
            )
        text = result.text if read is None else read.content
        reason = result.finish_reason.value
        return answers.chat_choice(result.index, text, [], reason, result.seed, lp)
