"""What the pool keeps per model: its state (``ModelState``, Together's endpoint states),
the ``ModelEntry`` of each configured model, the ``LoadedModel`` a request is served with,
the ``Lease`` a request holds, and the protocols the pool is built from (the engine
``Factory``, where loads are counted: ``PoolEvents``)."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tether.engine.request import EngineStats
from tether.engine.sampling_params import SamplingDefaults
from tether.pool.factory import ServedEngine
from tether.pool.spec import ModelSpec


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


class NoEvents:
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
    failed_at: float = 0.0  # when its last load failed (the pool's clock)
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
    """A hold on a loaded model (a request's, or a model's on the base that serves it):
    released once, when its work is over."""

    def __init__(self, entry: ModelEntry, release: Callable[[ModelEntry], None]) -> None:
        assert entry.loaded is not None
        self.model = entry.loaded
        self._entry = entry
        self._release = release
        self._released = False
        entry.leases += 1

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release(self._entry)
