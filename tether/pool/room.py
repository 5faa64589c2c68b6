"""Room for a model about to load: the pool's policy, apart from its mechanics.

``plan`` looks at what is resident and says what a load needs done first: nothing (it
fits the count, the memory budget and the machine's available memory), the eviction of the
least recently used idle, unpinned model, a wait (only busy models stand in the way), or a
refusal (even unloading every model that may be unloaded would not make room; the base that
serves the model, and pinned models, stay). The pool acts on it and asks again.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.pool.entry import Limits, ModelEntry, ModelState

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Room:
    """What a load needs first: all fields empty when it fits."""

    evict: ModelEntry | None = None
    wait: bool = False
    refuse: str | None = None


def gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"


def plan(
    entry: ModelEntry,
    need: int,
    base: ModelEntry | None,
    entries: list[ModelEntry],
    limits: Limits,
    available: int,
) -> Room:
    """What ``entry`` (``need`` bytes, served by ``base`` if not None) needs first."""
    if limits.memory_bytes and need > limits.memory_bytes:
        return Room(refuse=f"it needs {gib(need)}, over the budget of {gib(limits.memory_bytes)}")
    others = [e for e in entries if e.resident and e is not entry]
    why = shortfall(others, need, limits, available)
    if why is None:
        return Room()
    candidates = [
        e for e in others if e.state is ModelState.STARTED and not e.pinned and e is not base
    ]
    fixed = [e for e in others if e not in candidates]
    freed = sum(e.footprint for e in candidates)
    if shortfall(fixed, need, limits, available + freed) is not None:
        return Room(refuse=f"no room: {why}, and unloading every model that may be would not help")
    idle = sorted((e for e in candidates if e.idle), key=lambda e: e.last_used)
    if idle:
        return Room(evict=idle[0])
    return Room(wait=True)


def shortfall(others: list[ModelEntry], need: int, limits: Limits, available: int) -> str | None:
    """Why a model of ``need`` bytes does not fit next to ``others``, or None."""
    if limits.max_loaded and len(others) + 1 > limits.max_loaded:
        return f"{len(others)} model(s) loaded, at most {limits.max_loaded}"
    budget = limits.memory_bytes
    left = budget - sum(e.footprint for e in others)
    if budget and need > left:
        return f"it needs {gib(need)}, the memory budget has {gib(left)} left"
    if need > available:
        return f"it needs {gib(need)}, the machine has {gib(available)} available"
    return None
