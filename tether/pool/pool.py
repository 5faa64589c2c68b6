"""``ModelPool``: the models one server serves, loaded on demand under a budget
(ARCHITECTURE.md, "Several models", has the request's path through it).

A model with a lease (a request running, or queued in its engine; a LoRA adapter served by
its engine) or with requests waiting for it to load is never unloaded; a pinned one never
is; ``ttl_s`` unloads one idle that long. Loads and unloads run one at a time, under one
lock (two loads would share two cores and the memory check; a model must not load again
while its previous engine is still stopping). Room is made by ``room.plan``. A load that
fails leaves its model in ``ERROR`` with the reason, answered as a 503 to the requests that
asked for it; a request ``retry_s`` later tries again. Every failure stays with its model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

from tether.chat.template import ChatTemplate
from tether.engine.errors import (
    EngineError,
    EngineShutdownError,
    ModelUnavailableError,
    QueueFullError,
)
from tether.pool import memory
from tether.pool.entry import (
    Factory,
    Lease,
    Limits,
    LoadedModel,
    ModelEntry,
    ModelState,
    NoEvents,
    PoolEvents,
)
from tether.pool.factory import GivenEngine, ServedEngine, stop_quietly
from tether.pool.room import gib, plan
from tether.pool.spec import ModelTable
from tether.pool.ttl import reap

__all__ = ["Lease", "Limits", "LoadedModel", "ModelEntry", "ModelPool", "ModelState"]

log = logging.getLogger("tether.pool")

RETRY_S = 10.0  # a model whose load failed is tried again after this long
_POLL_S = 1.0  # how often a wait for room looks again, whatever woke it


class ModelPool:
    def __init__(
        self,
        table: ModelTable,
        factory: Factory,
        limits: Limits | None = None,
        *,
        events: PoolEvents | None = None,
        available: Callable[[], int] = memory.available_bytes,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_S,
    ) -> None:
        self.table = table
        self._factory = factory
        self.limits = limits or Limits()
        self.events: PoolEvents = events or NoEvents()
        self._available = available
        self._clock = clock
        self._retry_s = retry_s
        self.entries = {
            spec.name: ModelEntry(spec, pinned=spec.pinned, ttl_s=spec.ttl_s)
            for spec in table.specs
        }
        self._lock = asyncio.Lock()  # loads and unloads, one at a time
        self._changed = asyncio.Event()  # a lease released, a model unloaded
        self._closed = asyncio.Event()
        self._ttls_changed = asyncio.Event()
        self._closing: EngineError | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.started = False
        self._manages = True  # it starts and stops the engines (not one a caller runs)

    @classmethod
    def of_engine(cls, engine: ServedEngine, table: ModelTable, chat: Any) -> ModelPool:
        """One model (``table``'s single one) whose engine the caller built and runs."""
        [spec] = table.specs
        pool = cls(table, GivenEngine(engine))
        pool._manages = False
        entry = pool.entries[spec.name]
        entry.loaded = LoadedModel(spec.name, spec, engine, chat)
        entry.state = ModelState.STARTED
        pool.started = True
        return pool

    # -- names ----------------------------------------------------------------------------

    def resolve(self, requested: str | None) -> ModelEntry | None:
        """The model ``requested`` names (a name or an alias; ``None``: the default)."""
        name = self.table.default if requested is None else self.table.resolve(requested)
        return self.entries.get(name) if name is not None else None

    @property
    def ready(self) -> bool:
        """Started, and no pinned model's engine has died."""
        if not self.started:
            return False
        for entry in self.entries.values():
            if entry.pinned and entry.loaded is not None and not entry.loaded.engine.ready:
                return False
        return True

    # -- requests -------------------------------------------------------------------------

    async def acquire(self, entry: ModelEntry) -> Lease:
        """A lease on ``entry``'s model, loading it first if needed. Raises
        ``QueueFullError`` when too many requests already wait for it,
        ``ModelUnavailableError`` when it cannot be loaded, ``EngineShutdownError`` while
        the server shuts down."""
        entry.waiting += 1
        try:
            while True:
                self._check_open()
                loaded = entry.loaded
                if entry.state is ModelState.STARTED and loaded is not None:
                    if loaded.engine.ready or entry.leases or not self._manages:
                        break
                    # Its engine died and nobody holds it: unload it, and load it again.
                    await self.unload(entry, reason="failed")
                    continue
                if entry.waiting > entry.spec.config.max_queue:
                    raise QueueFullError(
                        f"Too many requests are waiting for model {entry.name!r} to load; "
                        "retry later."
                    )
                failed_for = self._clock() - entry.failed_at
                if entry.state is ModelState.ERROR and failed_for < self._retry_s:
                    raise ModelUnavailableError(
                        f"Model {entry.name!r} could not be loaded: {entry.error}"
                    )
                await self._loading(entry)
            lease = Lease(entry, self._release)
        finally:
            entry.waiting -= 1
            self._changed.set()
        entry.last_used = self._clock()
        return lease

    def _release(self, entry: ModelEntry) -> None:
        entry.leases -= 1
        entry.last_used = self._clock()
        self._changed.set()

    def _check_open(self) -> None:
        if self._closing is not None:
            raise self._closing

    # -- loading --------------------------------------------------------------------------

    async def load(self, entry: ModelEntry) -> None:
        """Load ``entry`` now (startup, the management API's start), unless it is."""
        entry.waiting += 1
        try:
            while entry.state is not ModelState.STARTED:
                self._check_open()
                await self._loading(entry)
        finally:
            entry.waiting -= 1
            self._changed.set()

    async def _loading(self, entry: ModelEntry) -> None:
        """Start ``entry``'s load or join the one under way; a failed load raises here for
        every request that waited on it. Cancelling one waiter does not cancel the load;
        the server shutting down ends the wait."""
        task = entry.load_task
        if task is None:
            task = entry.load_task = asyncio.get_running_loop().create_task(self._load(entry))
            self.track(task)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((task, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        self._check_open()
        task.result()

    async def _load(self, entry: ModelEntry) -> None:
        try:
            base_name = self._factory.base_of(entry.spec)
            base = self.entries[base_name] if base_name is not None else None
            while True:
                if base is not None and base.state is not ModelState.STARTED:
                    await self.load(base)
                async with self._lock:
                    self._check_open()
                    if entry.state is ModelState.STARTED:
                        return
                    if base is not None and base.state is not ModelState.STARTED:
                        continue  # unloaded while this waited for the lock
                    # Taken under the lock, where nothing can unload the base first.
                    base_lease = Lease(base, self._release) if base is not None else None
                    try:
                        await self._load_now(entry, base, base_lease)
                    except BaseException:
                        if base_lease is not None:
                            base_lease.release()
                        raise
                    return
        finally:
            entry.load_task = None

    async def _load_now(
        self, entry: ModelEntry, base: ModelEntry | None, base_lease: Lease | None
    ) -> None:
        """Estimate, make room, build and start (the lock held)."""
        spec = entry.spec
        try:
            need = await asyncio.to_thread(self._factory.estimate, spec)
        except (OSError, ValueError) as exc:
            self._failed(entry, f"cannot read the model: {exc}")
        await self._make_room(entry, need, base)
        self._check_open()
        entry.state, entry.error, entry.footprint = ModelState.STARTING, None, need
        where = spec.path or "embedded"
        log.info("loading model %s (%s, about %s)", entry.name, where, gib(need))
        started = time.perf_counter()
        try:
            engine = self._factory.build(spec, base_lease.model.engine if base_lease else None)
        except Exception as exc:
            self._failed(entry, str(exc) or type(exc).__name__)
        try:
            await engine.start()
            # The chat template in force; a template that does not compile fails the load.
            chat: ChatTemplate = spec.config.chat_template_for(engine.chat_template)
        except BaseException as exc:  # a cancelled load (shutdown) stops its engine too
            await stop_quietly(engine)
            if not isinstance(exc, Exception):
                entry.state, entry.footprint = ModelState.STOPPED, 0
                raise
            self._failed(entry, str(exc) or type(exc).__name__)
        seconds = time.perf_counter() - started
        entry.loaded = LoadedModel(entry.name, spec, engine, chat)
        entry.base_lease = base_lease
        entry.state = ModelState.STARTED
        entry.last_used = self._clock()
        self.events.loaded(entry.name, seconds)
        log.info("model %s loaded in %.2f s", entry.name, seconds)

    def _failed(self, entry: ModelEntry, reason: str) -> NoReturn:
        entry.state, entry.error, entry.footprint = ModelState.ERROR, reason, 0
        entry.failed_at = self._clock()
        self.events.load_failed(entry.name)
        log.error("model %s failed to load: %s", entry.name, reason)
        raise ModelUnavailableError(f"Model {entry.name!r} could not be loaded: {reason}")

    async def _make_room(self, entry: ModelEntry, need: int, base: ModelEntry | None) -> None:
        """Act on ``room.plan`` until ``entry`` fits: unload the model it names, or wait for
        a busy one to go idle, or refuse (the lock held)."""
        while True:
            self._check_open()
            entries = list(self.entries.values())
            room = plan(entry, need, base, entries, self.limits, self._available())
            if room.refuse is not None:
                self._failed(entry, room.refuse)
            if room.evict is not None:
                await self._unload_locked(room.evict, reason="evicted")
            elif room.wait:
                self._changed.clear()  # a busy model goes idle: its lease is released
                await self._wait_changed()
            else:
                return

    async def _wait_changed(self) -> None:
        await _wait_any((self._changed, self._closed), _POLL_S)

    # -- unloading ------------------------------------------------------------------------

    async def unload(
        self,
        entry: ModelEntry,
        *,
        reason: str,
        when: Callable[[ModelEntry], bool] | None = None,
    ) -> None:
        """Stop ``entry``'s engine and free it, if ``when`` still holds once no load or
        unload is under way (its requests, if any, end with an error)."""
        async with self._lock:
            if when is None or when(entry):
                await self._unload_locked(entry, reason=reason)

    async def _unload_locked(self, entry: ModelEntry, *, reason: str) -> None:
        loaded = entry.loaded
        if loaded is None or entry.state is not ModelState.STARTED:
            return
        entry.state = ModelState.STOPPING
        log.info("unloading model %s (%s)", entry.name, reason)
        try:
            await stop_quietly(loaded.engine)
        finally:
            if entry.base_lease is not None:
                entry.base_lease.release()
            entry.loaded, entry.footprint, entry.base_lease = None, 0, None
            entry.state = ModelState.STOPPED
            self.events.unloaded(entry.name, reason)
            self._changed.set()

    # -- for the management API (tether.pool.control) ----------------------------------------

    def start_loading(self, entry: ModelEntry) -> None:
        """Load ``entry`` in the background (a failure is its ``ERROR`` state and reason)."""
        if entry.state is ModelState.STARTED or entry.load_task is not None:
            return
        entry.load_task = asyncio.get_running_loop().create_task(self._load(entry))
        self.track(entry.load_task)

    def changed(self) -> None:
        """A setting the pool's waits depend on changed (pinning, a TTL)."""
        self._changed.set()
        self._ttls_changed.set()

    def now(self) -> float:
        return self._clock()

    async def wait_changed(self) -> None:
        """Until a lease is released or a model unloaded (at most a second)."""
        self._changed.clear()
        await self._wait_changed()

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task until it ends, and consume its error (it is the model's
        state; nobody else awaits it)."""
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background model task failed: %r", task.exception())

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the pinned models, and start unloading idle ones past their TTL. A single
        model that fails to load fails the start (as before the pool); with several, the
        failure stays with that model."""
        for entry in self.entries.values():
            if entry.pinned and entry.state is not ModelState.STARTED:
                try:
                    await self.load(entry)
                except ModelUnavailableError:
                    if self.table.single:
                        raise
        self.started = True
        self._reaper = asyncio.get_running_loop().create_task(reap(self))

    async def wait_ttl_change(self, timeout: float) -> None:
        """Until a TTL changes, the server shuts down, or ``timeout`` passes (``ttl``)."""
        self._ttls_changed.clear()
        await _wait_any((self._ttls_changed, self._closed), timeout)

    def end_all(self, error: EngineError) -> None:
        """The drain is over: every loaded model's requests, and every request waiting for a
        model to load, end with ``error``; no new request gets a model."""
        self._closing = error
        self._closed.set()
        for entry in self.entries.values():
            if entry.loaded is not None:
                entry.loaded.engine.end_all(error)
        self._changed.set()

    async def stop(self) -> None:
        """Unload everything (the server is stopping); loads under way are cancelled."""
        if self._closing is None:
            self._closing = EngineShutdownError("The server is shutting down.")
        self._closed.set()
        running = [self._reaper] if self._reaper is not None else []
        running += list(self._background)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for entry in self.entries.values():
            if entry.loaded is not None:
                await stop_quietly(entry.loaded.engine)
                entry.loaded, entry.state = None, ModelState.STOPPED


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    """Until one of ``events`` is set, or ``timeout`` passes (``asyncio.wait``, not
    ``wait_for``: Python 3.11's can lose a cancellation that meets a completion)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
