"""Engine outputs → stream payloads, with the contract's finishing and usage rules.

``ChoiceStreamer`` turns each ``StepOutput`` into zero or more chunk payloads: one per output
that released text, then, when a choice finishes, its finishing chunk (empty text,
``finish_reason``, ``seed``). Usage rides on the finishing chunk of the last choice to
finish, or, with ``stream_options.include_usage``, on a separate ``choices: []`` chunk at
the end, never on both (LangChain sums usage over chunks; wire-contract.md "Chat chunk").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tether.api.errors import stream_error_payload
from tether.api.metrics import RequestTimer
from tether.api.pipeline.results import UsageTally
from tether.api.sse import EventStreamResponse
from tether.api.wire import objects
from tether.api.wire.chunks import ChunkBuilder
from tether.engine.base import RequestStream
from tether.engine.request import StepOutput, TokenInfo

Chunk = dict[str, Any]


def last_token(tokens: Sequence[TokenInfo]) -> TokenInfo | None:
    """A multi-token output is sent as one chunk named after its last token."""
    return tokens[-1] if tokens else None


class ChoiceStreamer:
    """Chunking rules shared by every endpoint; subclasses build the payloads."""

    def __init__(self, n: int, include_usage: bool) -> None:
        self._tally = UsageTally(n)
        self._include_usage = include_usage

    def on_output(self, out: StepOutput) -> list[Chunk]:
        chunks = [self.text_chunk(out.index, out.text, out.tokens)] if out.text else []
        if out.finish_reason is not None:
            chunks.append(self.finish_chunk(out, out.finish_reason.value, self.finish_usage(out)))
        return chunks

    def on_end(self) -> list[Chunk]:
        if self._include_usage and self._tally.complete:
            return [self.usage_chunk(self._tally.wire())]
        return []

    def finish_usage(self, out: StepOutput) -> objects.Usage | None:
        """Count a finished choice; the usage to put on its finishing chunk, if any."""
        self._tally.add_finished(out.prompt_tokens, out.completion_tokens, out.cached_tokens)
        if self._include_usage or not self._tally.complete:
            return None
        return self._tally.wire()

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenInfo]) -> Chunk:
        """A chunk of ``text``, released by ``tokens`` (possibly none: held-back text)."""
        raise NotImplementedError

    def finish_chunk(self, out: StepOutput, reason: str, usage: objects.Usage | None) -> Chunk:
        raise NotImplementedError

    def usage_chunk(self, usage: objects.Usage) -> Chunk:
        raise NotImplementedError


class EnvelopeStreamer(ChoiceStreamer):
    """Chat and completions chunks (the shared envelope of ``chunks.ChunkBuilder``)."""

    def __init__(self, builder: ChunkBuilder, n: int, include_usage: bool) -> None:
        super().__init__(n, include_usage)
        self.builder = builder

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenInfo]) -> Chunk:
        return self.builder.text(index, text, tokens)

    def finish_chunk(self, out: StepOutput, reason: str, usage: objects.Usage | None) -> Chunk:
        return self.builder.finish(out.index, reason, out.seed, usage)

    def usage_chunk(self, usage: objects.Usage) -> Chunk:
        return self.builder.usage_only(usage)


async def stream_chunks(
    stream: RequestStream, streamer: ChoiceStreamer, timer: RequestTimer
) -> AsyncGenerator[Chunk, None]:
    """The payloads of one request. Closing this generator closes (aborts) the engine stream."""
    async with stream:
        async for out in stream:
            timer.on_output(out)
            for chunk in streamer.on_output(out):
                yield chunk
    timer.finish()
    for chunk in streamer.on_end():
        yield chunk


def event_stream(
    stream: RequestStream, streamer: ChoiceStreamer, timer: RequestTimer, keepalive_s: float
) -> EventStreamResponse:
    return EventStreamResponse(
        stream_chunks(stream, streamer, timer),
        keepalive_s=keepalive_s,
        on_error=stream_error_payload,
        on_close=stream.aclose,
    )
