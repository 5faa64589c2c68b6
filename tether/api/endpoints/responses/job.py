"""``ResponseJob``: one response's generation, decoupled from any connection. It runs to its
end and stores it; a background job keeps running after its client left, and saves its
events as it goes so that a dropped stream can be resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from tether.api.endpoints.responses import wire
from tether.api.endpoints.responses.events import EventLog
from tether.api.endpoints.responses.output import OutputBuilder, _copy
from tether.api.metrics import RequestTimer
from tether.engine.base import RequestStream
from tether.engine.errors import EngineError, EngineShutdownError
from tether.engine.request import FinishReason, StepOutput
from tether.state.store import ResponseStore, StoreError

# Stream closes scheduled by ended jobs, kept until they are done.
_CLOSING: set[asyncio.Future[None]] = set()
log = logging.getLogger(__name__)


# A background response saves its new events at least this often (and at its end).
SAVE_EVERY_S = 0.25


SAVE_EVERY_EVENTS = 64


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
        self.task.add_done_callback(self._close_stream)

    def _close_stream(self, _task: asyncio.Future[None]) -> None:
        """However the task ended (even cancelled before it ran, which skips its own
        ``async with``), the engine stream is closed: the request aborted, its model's lease
        released. Closing is idempotent."""
        closing = asyncio.ensure_future(self._stream.aclose())
        _CLOSING.add(closing)
        closing.add_done_callback(_CLOSING.discard)

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
