"""``ModelPool``: the models one server serves, loaded on demand under a budget.

    request ─► resolve(name or alias) ─► acquire: loaded? a lease at once
                                         else wait in the model's queue while it loads:
                                           make room (unload the least recently used idle
                                           model while the count or memory budget is
                                           exceeded, or wait for a busy one to go idle)
                                           → build and start its engine
             ... the request streams ...
             lease released when its stream closes ─► the model's idle clock starts

A model with a lease (a request running, or queued in its engine) or with requests
waiting for it to load is never unloaded; a pinned one never is. ``ttl_s`` unloads a model
idle that long. Loads run one at a time (two would share two cores and the memory check).
A load that fails leaves its model in ``ERROR`` with the reason, answered as a 503 to the
requests that asked for it; the next request for it tries again. Nothing here can bring
the process down: every failure stays with its model.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from tether.chat.template import ChatTemplate
from tether.engine.errors import (
    EngineError,
    EngineShutdownError,
    ModelUnavailableError,
    QueueFullError,
)
from tether.engine.request import EngineStats
from tether.engine.sampling_params import SamplingDefaults
from tether.pool import memory
from tether.pool.factory import ServedEngine
from tether.pool.spec import ModelSpec, ModelTable

log = logging.getLogger("tether.pool")

GIB = memory.GIB


class ModelState(enum.StrEnum):
    """Together's endpoint states, as a loaded model has them."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    STARTED = "STARTED"
    STOPPING = "STOPPING"
    ERROR = "ERROR"


class Factory(Protocol):
    def build(self, spec: ModelSpec, base: ServedEngine | None = None) -> ServedEngine: ...

    def estimate(self, spec: ModelSpec) -> int: ...

    def base_of(self, spec: ModelSpec) -> str | None:
        """The model whose engine serves ``spec`` (it stays loaded while ``spec`` is)."""


class PoolEvents(Protocol):
    """Where loads and unloads are counted (``tether.api.metrics``)."""

    def loaded(self, model: str, seconds: float) -> None: ...

    def load_failed(self, model: str) -> None: ...

    def unloaded(self, model: str, reason: str) -> None: ...


class _NoEvents:
    def loaded(self, model: str, seconds: float) -> None:
        pass

    def load_failed(self, model: str) -> None:
        pass

    def unloaded(self, model: str, reason: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Limits:
    """What may be resident at once: models (0: any number) and bytes (0: the machine's
    available memory only)."""

    max_loaded: int = 0
    memory_bytes: int = 0


@dataclass(eq=False)
class LoadedModel:
    """What a request is served with: the engine, its chat template, its defaults."""

    name: str
    spec: ModelSpec
    engine: ServedEngine
    chat: Any  # tether.chat.template.ChatTemplate, or a test's renderer

    def sampling_defaults(self) -> SamplingDefaults:
        """The server's (or models file's) sampling defaults over the model's own."""
        return self.engine.sampling_defaults.with_values(self.spec.config.sampling_defaults)


@dataclass(eq=False)
class ModelEntry:
    """One configured model and its state."""

    spec: ModelSpec
    state: ModelState = ModelState.STOPPED
    error: str | None = None
    loaded: LoadedModel | None = None
    leases: int = 0
    waiting: int = 0  # requests waiting for it to load
    last_used: float = 0.0
    footprint: int = 0  # estimated bytes, while loaded
    load_task: asyncio.Task[None] | None = None
    base_lease: Lease | None = None  # held on the model whose engine serves this one
    pinned: bool = False
    ttl_s: float = 0.0
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def shown_state(self) -> ModelState:
        """The state to report: a model whose load has been asked for is STARTING."""
        if self.load_task is not None and self.state in (ModelState.STOPPED, ModelState.ERROR):
            return ModelState.STARTING
        return self.state

    @property
    def resident(self) -> bool:
        return self.state in (ModelState.STARTING, ModelState.STARTED, ModelState.STOPPING)

    @property
    def idle(self) -> bool:
        return self.leases == 0 and self.waiting == 0

    def stats(self) -> EngineStats | None:
        return self.loaded.engine.stats() if self.loaded is not None else None


class Lease:
    """A request's hold on a loaded model: released once, when its work is over."""

    def __init__(self, pool: ModelPool, entry: ModelEntry) -> None:
        assert entry.loaded is not None
        self.model = entry.loaded
        self._pool = pool
        self._entry = entry
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._entry)


class ModelPool:
    def __init__(
        self,
        table: ModelTable,
        factory: Factory,
        limits: Limits = Limits(),
        *,
        events: PoolEvents | None = None,
        available: Callable[[], int] = memory.available_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self._factory = factory
        self.limits = limits
        self.events: PoolEvents = events or _NoEvents()
        self._available = available
        self._clock = clock
        self.entries = {
            spec.name: ModelEntry(spec, pinned=spec.pinned, ttl_s=spec.ttl_s)
            for spec in table.specs
        }
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._closing: EngineError | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.started = False

    @classmethod
    def of_engine(cls, engine: ServedEngine, table: ModelTable, chat: Any) -> ModelPool:
        """One model (``table``'s single one) whose engine the caller built and runs."""
        [spec] = table.specs
        pool = cls(table, _Given(engine))
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
            while entry.state is not ModelState.STARTED or entry.loaded is None:
                if self._closing is not None:
                    raise self._closing
                if entry.waiting > entry.spec.config.max_queue:
                    raise QueueFullError(
                        f"Too many requests are waiting for model {entry.name!r} to load; "
                        "retry later."
                    )
                await self._loading(entry)
            if self._closing is not None:
                raise self._closing
            entry.leases += 1
        finally:
            entry.waiting -= 1
            self._changed.set()
        entry.last_used = self._clock()
        return Lease(self, entry)

    def _release(self, entry: ModelEntry) -> None:
        entry.leases -= 1
        entry.last_used = self._clock()
        self._changed.set()

    # -- loading --------------------------------------------------------------------------

    async def load(self, entry: ModelEntry) -> None:
        """Load ``entry`` now (the management API's start), unless it already is."""
        entry.waiting += 1
        try:
            while entry.state is not ModelState.STARTED:
                await self._loading(entry)
        finally:
            entry.waiting -= 1
            self._changed.set()

    async def _loading(self, entry: ModelEntry) -> None:
        """Start ``entry``'s load or join the one under way; a failed load raises here for
        every request that waited on it. Cancelling one waiter does not cancel the load."""
        if entry.load_task is None:
            entry.load_task = asyncio.get_running_loop().create_task(self._load(entry))
        task = entry.load_task
        await asyncio.shield(task)

    async def _load(self, entry: ModelEntry) -> None:
        base_lease = None
        try:
            base = self._factory.base_of(entry.spec)
            if base is not None:  # before the load lock: loading the base takes it
                base_lease = await self.acquire(self.entries[base])
            async with self._load_lock:
                if entry.state is not ModelState.STARTED:
                    await self._load_now(entry, base_lease)
                    base_lease = None  # the entry holds it now
        finally:
            if base_lease is not None:
                base_lease.release()
            entry.load_task = None

    async def _load_now(self, entry: ModelEntry, base_lease: Lease | None) -> None:
        spec = entry.spec
        try:
            need = await asyncio.to_thread(self._factory.estimate, spec)
        except (OSError, ValueError) as exc:
            self._failed(entry, f"cannot read the model: {exc}")
        await self._make_room(entry, need)
        entry.state, entry.error = ModelState.STARTING, None
        entry.footprint = need
        log.info("loading model %s (%s, about %s)", entry.name, spec.path or "embedded", _gib(need))
        started = time.perf_counter()
        try:
            engine = self._factory.build(spec, base_lease.model.engine if base_lease else None)
        except Exception as exc:
            self._failed(entry, str(exc) or type(exc).__name__)
        try:
            await engine.start()
            chat = _chat_template(spec, engine)
        except Exception as exc:
            await _stop_quietly(engine)
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
        self.events.load_failed(entry.name)
        log.error("model %s failed to load: %s", entry.name, reason)
        raise ModelUnavailableError(f"Model {entry.name!r} could not be loaded: {reason}")

    async def _make_room(self, entry: ModelEntry, need: int) -> None:
        """Unload idle models, least recently used first, until ``entry`` fits the count,
        the memory budget and the machine's available memory; wait while only busy ones
        stand in the way; refuse when nothing could ever make room."""
        budget = self.limits.memory_bytes
        if budget and need > budget:
            self._failed(entry, f"it needs {_gib(need)}, over the budget of {_gib(budget)}")
        while True:
            others = [e for e in self.entries.values() if e.resident and e is not entry]
            why = self._no_room(others, need)
            if why is None:
                return
            candidates = [e for e in others if e.state is ModelState.STARTED and not e.pinned]
            idle = sorted((e for e in candidates if e.idle), key=lambda e: e.last_used)
            if idle:
                await self.unload(idle[0], reason="evicted")
                continue
            if not candidates:
                self._failed(entry, f"no room: {why}, and every loaded model is pinned")
            self._changed.clear()  # a busy model goes idle: its lease is released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)

    def _no_room(self, others: list[ModelEntry], need: int) -> str | None:
        """Why a model of ``need`` bytes does not fit next to ``others``, or None."""
        limit = self.limits.max_loaded
        if limit and len(others) + 1 > limit:
            return f"{len(others)} model(s) loaded, at most {limit}"
        budget = self.limits.memory_bytes
        left = budget - sum(e.footprint for e in others)
        if budget and need > left:
            return f"it needs {_gib(need)}, the memory budget has {_gib(left)} left"
        available = self._available()
        if need > available:
            return f"it needs {_gib(need)}, the machine has {_gib(available)} available"
        return None

    async def unload(self, entry: ModelEntry, *, reason: str) -> None:
        """Stop ``entry``'s engine and free it (its requests, if any, end with an error)."""
        loaded = entry.loaded
        if loaded is None or entry.state is not ModelState.STARTED:
            return
        entry.state = ModelState.STOPPING
        log.info("unloading model %s (%s)", entry.name, reason)
        try:
            await _stop_quietly(loaded.engine)
        finally:
            if entry.base_lease is not None:
                entry.base_lease.release()
            entry.loaded, entry.footprint, entry.base_lease = None, 0, None
            entry.state = ModelState.STOPPED
            self.events.unloaded(entry.name, reason)
            self._changed.set()

    # -- management (tether.api.management) -------------------------------------------------

    def set_pinned(self, entry: ModelEntry, pinned: bool) -> None:
        entry.pinned = pinned
        self._changed.set()

    def set_ttl(self, entry: ModelEntry, ttl_s: float) -> None:
        entry.ttl_s = ttl_s
        entry.last_used = self._clock()  # the new timeout counts from now

    def start_model(self, entry: ModelEntry) -> None:
        """Load ``entry`` in the background (a failure is its ``ERROR`` state and reason)."""
        if entry.state is ModelState.STARTED or entry.load_task is not None:
            return
        task = entry.load_task = asyncio.get_running_loop().create_task(self._load(entry))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    async def stop_model(self, entry: ModelEntry) -> None:
        """Unpin ``entry`` and unload it: now when idle, else once its requests are done
        (in the background). A request that asks for it later loads it again."""
        entry.pinned = False
        if entry.idle:
            await self.unload(entry, reason="stopped")
            return
        task = asyncio.get_running_loop().create_task(self._unload_when_idle(entry))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    async def _unload_when_idle(self, entry: ModelEntry) -> None:
        while not entry.idle:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
        if not entry.pinned:
            await self.unload(entry, reason="stopped")

    def _background_done(self, task: asyncio.Task[None]) -> None:
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
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Unload models idle past their TTL (checked at a quarter of the shortest TTL,
        between 0.05 and 5 s: TTLs may change at run time)."""
        while True:
            ttls = [e.ttl_s for e in self.entries.values() if e.ttl_s > 0]
            await asyncio.sleep(min(max(min(ttls, default=20.0) / 4, 0.05), 5.0))
            now = self._clock()
            for entry in list(self.entries.values()):
                expired = entry.ttl_s > 0 and now - entry.last_used >= entry.ttl_s
                if expired and entry.idle and not entry.pinned:
                    await self.unload(entry, reason="ttl")

    def end_all(self, error: EngineError) -> None:
        """The drain is over: every loaded model's requests end with ``error``, and no new
        request gets a model."""
        self._closing = error
        for entry in self.entries.values():
            if entry.loaded is not None:
                entry.loaded.engine.end_all(error)
        self._changed.set()

    async def stop(self) -> None:
        """Unload everything (the server is stopping)."""
        if self._closing is None:
            self._closing = EngineShutdownError("The server is shutting down.")
        running = [self._reaper] if self._reaper is not None else []
        running += list(self._background)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        tasks = [e.load_task for e in self.entries.values() if e.load_task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for entry in self.entries.values():
            if entry.loaded is not None:
                await _stop_quietly(entry.loaded.engine)
                entry.loaded, entry.state = None, ModelState.STOPPED


class _Given:
    """The factory of a pool over an engine built elsewhere: it builds nothing."""

    def __init__(self, engine: ServedEngine) -> None:
        self._engine = engine

    def build(self, spec: ModelSpec, base: ServedEngine | None = None) -> ServedEngine:
        return self._engine

    def estimate(self, spec: ModelSpec) -> int:
        return 0

    def base_of(self, spec: ModelSpec) -> str | None:
        return None


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"


def _chat_template(spec: ModelSpec, engine: ServedEngine) -> ChatTemplate:
    """The chat template in force; a template that does not compile fails the load."""
    return spec.config.chat_template_for(engine.chat_template)


async def _stop_quietly(engine: ServedEngine) -> None:
    try:
        await engine.stop()
    except Exception:
        log.exception("stopping an engine failed")
