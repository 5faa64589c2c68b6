"""A response's generation, decoupled from any connection.

``OutputBuilder`` turns engine outputs into output items and the typed stream events that
build them (a reasoning model's text split as chat does; with tools, text that may be a call
held back as chat does). ``EventLog`` numbers the events and lets any number of readers
follow them live from any sequence number. ``ResponseJob`` runs one response to its end
and stores it; a background job keeps running after its client left, and saves its events
as it goes so that a dropped stream can be resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tether.api.metrics import RequestTimer
from tether.api.responses_api import wire
from tether.api.tool_calls import ToolPlan
from tether.chat.output import ChoiceReader
from tether.chat.reasoning import Part, Reasoning
from tether.chat.tool_parsers.base import CallArguments, CallStart, Event
from tether.engine.base import RequestStream
from tether.engine.errors import EngineError, EngineShutdownError
from tether.engine.request import FinishReason, StepOutput
from tether.state.store import ResponseStore, StoreError

log = logging.getLogger(__name__)

# Events of one response kept in memory; older ones are read back from the store.
MAX_EVENTS_IN_MEMORY = 4096
# A background response saves its new events at least this often (and at its end).
SAVE_EVERY_S = 0.25
SAVE_EVERY_EVENTS = 64


class OutputBuilder:
    """Output items and their events, from one choice's outputs."""

    def __init__(self, plan: ToolPlan, reasoning: Reasoning | None) -> None:
        self.items: list[dict[str, Any]] = []
        self._reader = plan.reader(reasoning) or ChoiceReader(None, None)
        self._call_ids = plan.call_ids
        self._open: dict[str, Any] | None = None  # the item being written

    @property
    def reasoning_tokens(self) -> int:
        return self._reader.reasoning_tokens or 0

    def feed(self, out: StepOutput) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for event in self._reader.feed(out.text, len(out.tokens)):
            self._event(event, events)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Flush what was held (text, or the last calls), close the open item."""
        events: list[dict[str, Any]] = []
        for event in self._reader.finish():
            self._event(event, events)
        self._close(events)
        return events

    def _event(self, event: Event, events: list[dict[str, Any]]) -> None:
        if isinstance(event, CallStart):
            self._call_start(event, events)
        elif isinstance(event, CallArguments):
            self._call_arguments(event.delta, events)
        else:
            self._text(event[0], event[1], events)

    def _text(self, part: Part, text: str, events: list[dict[str, Any]]) -> None:
        kind = "reasoning" if part == "reasoning" else "message"
        if self._open is None or self._open["type"] != kind:
            self._close(events)
            self._start(kind, events)
        item = self._open
        assert item is not None
        item["content"][0]["text"] += text
        events.append(self._text_event(item, "delta", delta=text))

    def _start(self, kind: str, events: list[dict[str, Any]]) -> None:
        if kind == "reasoning":
            item = wire.reasoning_item(wire.new_id("rs"), None, "in_progress")
            part = wire.reasoning_text_part("")
        else:
            item = wire.message_item(wire.new_id("msg"), None, "in_progress")
            part = wire.output_text_part("")
        self.items.append(item)
        self._open = item
        events.append(self._item_event("added", item))
        item["content"].append(part)
        events.append(self._part_event("added", item))

    def _close(self, events: list[dict[str, Any]]) -> None:
        item = self._open
        if item is None:
            return
        self._open = None
        if item["type"] == "function_call":
            self._call_done(item, events)
            return
        events.append(self._text_event(item, "done", text=item["content"][0]["text"]))
        events.append(self._part_event("done", item))
        item["status"] = "completed"
        events.append(self._item_event("done", item))

    # The events of the open item (always the last one, with one content part).

    def _item_event(self, stage: str, item: dict[str, Any]) -> dict[str, Any]:
        index = len(self.items) - 1
        return wire.event(f"response.output_item.{stage}", output_index=index, item=_copy(item))

    def _part_event(self, stage: str, item: dict[str, Any]) -> dict[str, Any]:
        return wire.event(
            f"response.content_part.{stage}",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            content_index=0,
            part=dict(item["content"][0]),
        )

    def _text_event(self, item: dict[str, Any], stage: str, **fields: Any) -> dict[str, Any]:
        """``response.reasoning_text.*`` or ``response.output_text.*`` (which has logprobs)."""
        if item["type"] == "reasoning":
            name = f"response.reasoning_text.{stage}"
        else:
            name, fields = f"response.output_text.{stage}", {**fields, "logprobs": []}
        return wire.event(
            name, item_id=item["id"], output_index=len(self.items) - 1, content_index=0, **fields
        )

    def _call_start(self, call: CallStart, events: list[dict[str, Any]]) -> None:
        self._close(events)
        call_id = call.id or self._call_ids.new()
        item = wire.function_call_item(wire.new_id("fc"), call_id, call.name, "", "in_progress")
        self.items.append(item)
        self._open = item
        events.append(self._item_event("added", item))

    def _call_arguments(self, delta: str, events: list[dict[str, Any]]) -> None:
        item = self._open
        assert item is not None and item["type"] == "function_call"
        item["arguments"] += delta
        events.append(
            wire.event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                delta=delta,
            )
        )

    def _call_done(self, item: dict[str, Any], events: list[dict[str, Any]]) -> None:
        item["status"] = "completed"
        events.append(
            wire.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                name=item["name"],
                arguments=item["arguments"],
            )
        )
        events.append(self._item_event("done", item))


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "content" in copied:
        copied["content"] = [dict(part) for part in copied["content"]]
    return copied


class EventLog:
    """A response's events, numbered from 0, with readers that follow them live.

    Memory keeps at most ``MAX_EVENTS_IN_MEMORY`` events, and drops only events the job
    marked saved (``saved_through``): an event that left memory can always be read back.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._first = 0  # sequence number of self._events[0]
        self._saved = -1  # events up to this sequence number are in the store
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def next_sequence(self) -> int:
        return self._first + len(self._events)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        event["sequence_number"] = self.next_sequence
        self._events.append(event)
        self._trim()
        self._wake()
        return event

    def saved_through(self, sequence_number: int) -> None:
        self._saved = max(self._saved, sequence_number)
        self._trim()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _trim(self) -> None:
        excess = len(self._events) - MAX_EVENTS_IN_MEMORY
        drop = min(excess, self._saved + 1 - self._first)
        if drop > 0:
            del self._events[:drop]
            self._first += drop

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(
        self, after: int, older: Callable[[int], Awaitable[list[dict[str, Any]]]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event with a sequence number above ``after``, in order and each once, then
        each new one until the log closes. ``older(n)`` reads saved events after ``n``."""
        next_seq = after + 1
        while True:
            changed = self._changed
            if next_seq < self._first:
                progressed = False
                for event in await older(next_seq - 1):
                    if event["sequence_number"] != next_seq:
                        continue
                    yield event
                    next_seq, progressed = next_seq + 1, True
                    if next_seq >= self._first:
                        break
                if not progressed and next_seq < self._first:
                    raise RuntimeError(f"event {next_seq} is neither in memory nor stored")
                continue
            if next_seq < self.next_sequence:
                yield self._events[next_seq - self._first]
                next_seq += 1
                continue
            if self.closed:
                return
            await changed.wait()


class ResponseJob:
    """One response from its first event to its stored end."""

    def __init__(
        self,
        *,
        response_id: str,
        model: str,
        request: wire.ResponsesRequest,
        stream: RequestStream,
        builder: OutputBuilder,
        store: ResponseStore | None,
        input_items: list[dict[str, Any]],
        timer: RequestTimer,
        on_end: Callable[[ResponseJob], None],
    ) -> None:
        self.response_id = response_id
        self.request = request
        self.log = EventLog()
        self._model = model
        self._stream = stream
        self._builder = builder
        self._store = store if request.store else None
        self._input_items = input_items
        self._timer = timer
        self._on_end = on_end
        self._created_at = int(time.time())
        self._usage: dict[str, Any] | None = None
        self._status: wire.Status = "queued"
        self._error: dict[str, Any] | None = None
        self._incomplete: str | None = None
        self._unsaved: list[dict[str, Any]] = []
        self._items_saved = False
        self._saved_at = time.monotonic()
        self.stored = False  # the final response is on disk
        self.error: Exception | None = None  # what ended it, when it failed
        self.task: asyncio.Task[None] | None = None
        self._cancelling = False
        self._shutdown = False

    def body(self) -> dict[str, Any]:
        return wire.response_object(
            response_id=self.response_id,
            model=self._model,
            request=self.request,
            status=self._status,
            created_at=self._created_at,
            output=[_copy(item) for item in self._builder.items],
            usage=self._usage,
            error=self._error,
            incomplete_reason=self._incomplete,
        )

    @property
    def finished(self) -> bool:
        return self._status not in ("queued", "in_progress")

    async def save_queued(self) -> None:
        """A background response is stored before it starts, so that it can be polled."""
        if self._store is not None:
            await self._store.save(self.body(), self._input_items)
            self._items_saved = True

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def cancel(self, *, shutdown: bool = False) -> None:
        """Stop generating (once: a second cancel must not interrupt the first's save)."""
        if self._cancelling or self.task is None or self.task.done():
            return
        self._cancelling, self._shutdown = True, shutdown
        self.task.cancel()

    async def wait(self) -> None:
        """Until the job has ended (cancelling the waiter leaves the job running)."""
        if self.task is not None and not self.task.done():
            await asyncio.wait([self.task])

    async def _run(self) -> None:
        try:
            self._emit(wire.event("response.created", response=self.body()))
            self._status = "in_progress"
            self._emit(wire.event("response.in_progress", response=self.body()))
            await self._generate()
        except asyncio.CancelledError:
            if self._shutdown:
                self.error = EngineShutdownError("the server is shutting down")
                self._fail("server_shutdown", str(self.error))
            else:
                self._status = "cancelled"
            await self._save_quietly()
        except StoreError as exc:
            self.error = exc
            self._fail("storage_error", str(exc))
            await self._save_quietly()  # the failure itself, if the store has recovered
        except EngineError as exc:
            self.error = exc
            self._fail("server_error", str(exc))
            await self._save_quietly()
        except Exception as exc:
            log.exception("response %s failed", self.response_id)
            self.error = exc
            self._fail("server_error", f"internal error: {type(exc).__name__}")
            await self._save_quietly()
        finally:
            self._timer.finish()
            self.log.close()
            self._on_end(self)

    async def _save_quietly(self) -> None:
        """Store an unsuccessful end (shielded: a cancel must not cut the write in two); a
        store that fails now too is only logged (the endpoint keeps the end in memory)."""
        try:
            await asyncio.shield(self._save_end(announce=False))
        except StoreError as exc:
            log.error("response %s: its end was not stored: %s", self.response_id, exc)
        except asyncio.CancelledError:
            pass

    async def _generate(self) -> None:
        builder = self._builder
        last: StepOutput | None = None
        async with self._stream as stream:
            async for out in stream:
                self._timer.on_output(out)
                last = out
                for event in builder.feed(out):
                    self._emit(event)
                if out.finish_reason is not None:
                    break
                await self._save_progress()
        for event in builder.finish():
            self._emit(event)
        assert last is not None
        self._usage = wire.usage(
            last.prompt_tokens, last.cached_tokens, last.completion_tokens, builder.reasoning_tokens
        )
        if last.finish_reason == FinishReason.LENGTH:
            self._status, self._incomplete = "incomplete", "max_output_tokens"
        else:
            self._status = "completed"
        await self._save_end(announce=True)

    def _emit(self, event: dict[str, Any]) -> None:
        self._unsaved.append(self.log.append(event))

    def _fail(self, code: str, message: str) -> None:
        self._status, self._error = "failed", wire.error_object(code, message)
        self._emit(wire.event("response.failed", response=self.body()))

    async def _save_progress(self) -> None:
        """A background response's events reach the store as it runs (for resuming)."""
        if self._store is None or not self.request.background:
            return
        due = time.monotonic() - self._saved_at >= SAVE_EVERY_S
        if due or len(self._unsaved) >= SAVE_EVERY_EVENTS:
            items = None if self._items_saved else self._input_items
            await self._store.save(self.body(), items, self._unsaved)
            self.log.saved_through(self._unsaved[-1]["sequence_number"] if self._unsaved else -1)
            self._items_saved = True
            self._unsaved, self._saved_at = [], time.monotonic()

    async def _save_end(self, *, announce: bool) -> None:
        """Store the final response, then (``announce``) send its last event: a client told
        ``response.completed`` can rely on it being stored."""
        final = wire.event(f"response.{self._status}", response=self.body()) if announce else None
        if self._store is not None:
            events = list(self._unsaved)
            if final is not None and self.request.background:
                final["sequence_number"] = self.log.next_sequence
                events.append(final)
            items = None if self._items_saved else self._input_items
            background = self.request.background
            await self._store.save(self.body(), items, events if background else None)
            if background and events:
                self.log.saved_through(events[-1]["sequence_number"])
            self._unsaved, self._items_saved = [], True
            self.stored = True
        if final is not None:
            self.log.append(final)
