"""The Responses API routes: create, retrieve (or resume its stream), delete, input items,
cancel.

A request becomes the chat completion request the chat endpoint prepares (chat template,
tools, ``text.format``, reasoning), and runs as a ``ResponseJob``. Without ``background`` the
job belongs to its connection (a client that leaves aborts it, as with every other stream);
with ``background`` it runs on alone, and ``GET /v1/responses/{id}?stream=true
&starting_after=N`` follows it from any sequence number, live or from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api.endpoints.chat import ChatService
from tether.api.endpoints.responses import convert, wire
from tether.api.endpoints.responses.job import ResponseJob
from tether.api.endpoints.responses.output import OutputBuilder
from tether.api.errors import (
    InvalidRequest,
    NotFound,
    StorageFailed,
    as_api_error,
)
from tether.api.pipeline.admission import accept
from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.generation import cancel_on_disconnect, start_generation
from tether.api.sse import EventStreamResponse
from tether.state.store import ResponseStore, StoreError

log = logging.getLogger(__name__)

# How many earlier responses a ``previous_response_id`` chain may reach back.
MAX_CHAIN = 256
MAX_PAGE = 100
# Ends of responses the store failed to take, kept for polling clients (the newest).
MAX_UNSTORED = 1024


def _storage_failed(exc: StoreError) -> StorageFailed:
    return StorageFailed(f"The state database failed: {exc}", busy=exc.busy)


def stream_error_event(exc: Exception) -> dict[str, Any]:
    detail = as_api_error(exc).detail()
    return wire.error_event(detail["code"] or detail["type"], detail["message"], detail["param"])


class ResponsesService:
    """``/v1/responses``; ``store`` is None when the server runs with ``--no-store``."""

    def __init__(self, ctx: ServingContext, store: ResponseStore | None) -> None:
        self.ctx = ctx
        self.store = store
        self.chat = ChatService(ctx)
        self.jobs: dict[str, ResponseJob] = {}  # running (and background) responses
        self._unstored: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- POST /v1/responses ----------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        accepted = await accept(self.ctx, request, wire.ResponsesRequest)
        timer, request_id, body, model, ctx, lease = accepted
        try:
            if body.background and (not body.store or self.store is None):
                why = "store is false" if not body.store else "this server runs with --no-store"
                raise InvalidRequest(f"background: needs a stored response ({why})", "background")
            if self.store is None:
                body = body.model_copy(update={"store": False})
            history = await self._history(body.previous_response_id)
            items = convert.input_items(body)
            chat_request = convert.chat_request(body, history, items)
            prompt = await self.chat.prepare(ctx, chat_request)
        except BaseException:
            lease.release()
            raise
        stream = start_generation(
            ctx,
            lease,
            chat_request,
            request_id,
            prompt.ids,
            prompt.constraint,
            prompt.tools.markers,
        )
        job = ResponseJob(
            response_id=wire.new_id("resp"),
            model=model,
            request=body,
            stream=stream,
            builder=OutputBuilder(prompt.tools, prompt.reasoning),
            store=self.store,
            input_items=[wire.input_item_wire(item) for item in items],
            timer=timer,
            on_end=self._ended,
        )
        if body.background:
            try:
                await job.save_queued()
            except BaseException as exc:
                await stream.aclose()  # nothing may keep generating for nobody
                if isinstance(exc, StoreError):
                    raise _storage_failed(exc) from exc
                raise
        self.jobs[job.response_id] = job
        job.start()
        if body.stream:
            return self._event_stream(job, after=-1, detach=body.background)
        if body.background:
            return JSONResponse(job.body())
        try:
            await cancel_on_disconnect(request.receive, job.wait())
        except BaseException:
            job.cancel()
            raise
        return self._final(job)

    def _final(self, job: ResponseJob) -> Response:
        """A whole response; one that failed is the error status chat would answer with
        (503 at shutdown, so that clients retry; 500/503 when the store failed)."""
        if isinstance(job.error, StoreError):
            raise _storage_failed(job.error)
        if job.error is not None:
            raise as_api_error(job.error)
        return JSONResponse(job.body())

    def _ended(self, job: ResponseJob) -> None:
        self.jobs.pop(job.response_id, None)
        if job.request.store and not job.stored:
            # The store failed: keep its end in memory, so that polling sees it end.
            self._unstored[job.response_id] = job.body()
            while len(self._unstored) > MAX_UNSTORED:
                self._unstored.popitem(last=False)

    async def shutdown(self, timeout: float) -> None:
        """Before the engine and the store stop: end the running jobs (background ones are
        stored as failed with ``server_shutdown``) and let them store their end."""
        tasks = [job.task for job in self.jobs.values() if job.task is not None]
        for job in list(self.jobs.values()):
            job.cancel(shutdown=True)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _history(self, previous_id: str | None) -> list[dict[str, Any]]:
        """The stored conversation ``previous_id`` ends: each response's input items, then
        its output items, oldest first."""
        if previous_id is None:
            return []
        if self.store is None:
            raise InvalidRequest(
                "previous_response_id: this server stores no responses (--no-store)",
                "previous_response_id",
            )
        chain: list[list[dict[str, Any]]] = []
        current: str | None = previous_id
        while current is not None:
            if len(chain) >= MAX_CHAIN:
                raise InvalidRequest(
                    f"previous_response_id: the conversation is over {MAX_CHAIN} responses long",
                    "previous_response_id",
                )
            if current in self.jobs:
                raise InvalidRequest(
                    f"previous_response_id: response {current!r} has not finished yet",
                    "previous_response_id",
                )
            try:
                stored = await self.store.get(current)
            except StoreError as exc:
                raise _storage_failed(exc) from exc
            if stored is None:
                raise InvalidRequest(
                    f"previous_response_id: no stored response {current!r}",
                    "previous_response_id",
                )
            chain.append([*stored.input_items, *stored.body["output"]])
            current = stored.body.get("previous_response_id")
        return [item for items in reversed(chain) for item in items]

    # -- streams ----------------------------------------------------------------------------

    def _event_stream(self, job: ResponseJob, *, after: int, detach: bool) -> Response:
        return EventStreamResponse(
            self._follow(job, after, detach),
            keepalive_s=self.ctx.config.keepalive_s,
            on_error=stream_error_event,
            named=True,
        )

    async def _follow(
        self, job: ResponseJob, after: int, detach: bool
    ) -> AsyncGenerator[dict[str, Any], None]:
        store = self.store

        async def older(after_seq: int) -> list[dict[str, Any]]:
            return [] if store is None else await store.events(job.response_id, after_seq)

        last = after
        try:
            async for event in job.log.follow(after, older):
                last = event["sequence_number"]
                yield event
        except Exception as exc:
            yield _numbered_error(exc, last + 1)
        finally:
            if not detach and not job.finished:
                job.cancel()  # the client left a response that was only its own

    async def _replay(self, response_id: str, after: int) -> AsyncGenerator[dict[str, Any], None]:
        assert self.store is not None
        try:
            events = await self.store.events(response_id, after)
        except StoreError as exc:
            yield _numbered_error(exc, after + 1)
            return
        for event in events:
            yield event

    # -- GET / DELETE / cancel ----------------------------------------------------------------

    async def retrieve(self, request: Request, response_id: str) -> Response:
        query = request.query_params
        if query.get("stream", "").lower() in ("true", "1"):
            after = _int_param(query.get("starting_after"), "starting_after", default=-1)
            return await self._resume(response_id, after)
        job = self.jobs.get(response_id)
        if job is not None and job.request.store:
            return JSONResponse(job.body())
        if response_id in self._unstored:
            return JSONResponse(self._unstored[response_id])
        return JSONResponse((await self._stored(response_id)).body)

    async def _resume(self, response_id: str, after: int) -> Response:
        job = self.jobs.get(response_id)
        if job is not None and job.request.background:
            return self._event_stream(job, after=after, detach=True)
        stored = await self._stored(response_id)
        if not stored.body.get("background"):
            raise InvalidRequest(
                "stream: only background responses can be streamed again", "stream"
            )
        return EventStreamResponse(
            self._replay(response_id, after),
            keepalive_s=self.ctx.config.keepalive_s,
            on_error=stream_error_event,
            named=True,
        )

    async def _stored(self, response_id: str) -> Any:
        if self.store is None:
            raise NotFound(f"No response {response_id!r}: this server stores no responses.")
        try:
            stored = await self.store.get(response_id)
        except StoreError as exc:
            raise _storage_failed(exc) from exc
        if stored is None:
            raise NotFound(f"No stored response {response_id!r}.")
        return stored

    async def delete(self, response_id: str) -> Response:
        job = self.jobs.get(response_id)
        if job is not None:
            job.cancel()
            await job.wait()
        await self._stored(response_id)
        assert self.store is not None
        try:
            await self.store.delete(response_id)
        except StoreError as exc:
            raise _storage_failed(exc) from exc
        return JSONResponse(wire.deleted(response_id))

    async def cancel(self, response_id: str) -> Response:
        job = self.jobs.get(response_id)
        if job is None:
            stored = await self._stored(response_id)
            if not stored.body.get("background"):
                raise InvalidRequest("Only background responses can be cancelled.")
            return JSONResponse(stored.body)
        if not job.request.background:
            raise InvalidRequest("Only background responses can be cancelled.")
        job.cancel()
        await job.wait()
        return JSONResponse(job.body())

    async def input_items(self, request: Request, response_id: str) -> Response:
        query = request.query_params
        limit = _int_param(query.get("limit"), "limit", default=20)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit: must be in [1, {MAX_PAGE}]", "limit")
        order: Literal["asc", "desc"] = "asc" if query.get("order") == "asc" else "desc"
        if query.get("order") not in (None, "asc", "desc"):
            raise InvalidRequest("order: must be 'asc' or 'desc'", "order")
        items = list((await self._stored(response_id)).input_items)
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise InvalidRequest(f"after: no input item {after!r}", "after")
            items = items[ids.index(after) + 1 :]
        return JSONResponse(wire.item_list(items[:limit], has_more=len(items) > limit))


def _numbered_error(exc: Exception, sequence_number: int) -> dict[str, Any]:
    """The in-stream ``error`` event, numbered like the events before it."""
    error = _storage_failed(exc) if isinstance(exc, StoreError) else as_api_error(exc)
    detail = error.detail()
    event = wire.error_event(detail["code"] or detail["type"], detail["message"], detail["param"])
    event["sequence_number"] = sequence_number
    return event


def _int_param(text: str | None, name: str, *, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"{name}: must be an integer", name) from None
