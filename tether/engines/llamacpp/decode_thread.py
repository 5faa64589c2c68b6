"""``DecodeThread``: the one thread that calls ``llama_decode``, for every llama.cpp engine
of the process.

This llama.cpp build uses OpenMP (libgomp), whose workers spin between parallel regions
only while no more threads than there are CPUs drive them: a second thread calling
``llama_decode`` throttles both (ARCHITECTURE.md, "Only the engine thread calls
llama_decode"). So a server with several models loaded steps them all from one thread,
one engine step after the other, each on its own llama.cpp context. An engine that is
alone (the default) gets a thread of its own, started when it starts and ended when it
stops.

Engines join with ``attach`` and leave with ``detach``; the thread runs while any is
attached. ``wake`` is the one lock and condition of everything the thread waits on: each
engine's inbox is guarded by it, and notifying it wakes the thread.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Stepped(Protocol):
    """What the thread drives: an engine with work to do, stepped once at a time."""

    def wants_step(self) -> bool:
        """Whether there is work (called with ``wake`` held)."""

    def step_once(self) -> bool:
        """Apply the inbox and run one step; False once the engine cannot go on."""


class DecodeThread:
    def __init__(self, name: str = "tether-engine") -> None:
        self.wake = threading.Condition(threading.RLock())
        self._name = name
        self._engines: list[Stepped] = []
        self._current: Stepped | None = None
        self._thread: threading.Thread | None = None
        self._next = 0  # round-robin start, so that no engine always steps first

    def attach(self, engine: Stepped) -> None:
        with self.wake:
            if engine not in self._engines:
                self._engines.append(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self.wake.notify_all()

    def detach(self, engine: Stepped) -> None:
        """Stop stepping ``engine``; returns once the thread is not inside its step (so its
        context may be freed). The thread ends when no engine is left."""
        with self.wake:
            if engine in self._engines:
                self._engines.remove(engine)
            self.wake.notify_all()
            if threading.current_thread() is self._thread:
                return
            while self._current is engine:
                self.wake.wait()

    @property
    def engines(self) -> int:
        with self.wake:
            return len(self._engines)

    def _run(self) -> None:
        while True:
            with self.wake:
                ready = self._ready()
                while not ready:
                    if not self._engines:
                        self._thread = None
                        return
                    self.wake.wait()
                    ready = self._ready()
            for engine in ready:
                with self.wake:
                    if engine not in self._engines:
                        continue
                    self._current = engine
                going_on = False
                try:
                    going_on = engine.step_once()
                finally:
                    with self.wake:
                        self._current = None
                        if not going_on and engine in self._engines:
                            self._engines.remove(engine)
                        self.wake.notify_all()

    def _ready(self) -> list[Stepped]:
        """The engines with work, in round-robin order (``wake`` held)."""
        count = len(self._engines)
        if not count:
            return []
        start = self._next % count
        self._next = start + 1
        order = self._engines[start:] + self._engines[:start]
        return [engine for engine in order if engine.wants_step()]
