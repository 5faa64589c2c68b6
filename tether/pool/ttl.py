"""The TTL reaper: models idle past their ``ttl_s`` are unloaded (not pinned ones, not
busy ones). It looks at a quarter of the shortest TTL, between 0.05 and 5 s, and again
whenever a TTL changes (the management API sets them at run time)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from tether.pool.entry import ModelEntry, ModelState

log = logging.getLogger("tether.pool")


class Reaped(Protocol):
    """What the reaper needs of the pool (``ModelPool``)."""

    entries: dict[str, ModelEntry]

    def now(self) -> float: ...

    async def wait_ttl_change(self, timeout: float) -> None: ...

    async def unload(
        self, entry: ModelEntry, *, reason: str, when: Callable[[ModelEntry], bool] | None = None
    ) -> None: ...


async def reap(pool: Reaped) -> None:
    """Runs until cancelled (``ModelPool.stop``)."""
    while True:
        ttls = [e.ttl_s for e in pool.entries.values() if e.ttl_s > 0]
        await pool.wait_ttl_change(min(max(min(ttls, default=20.0) / 4, 0.05), 5.0))
        for entry in list(pool.entries.values()):

            def expired(entry: ModelEntry) -> bool:
                return _expired(entry, pool.now())

            try:
                if expired(entry):
                    await pool.unload(entry, reason="ttl", when=expired)
            except Exception:  # the reaper must outlive any one model's failure
                log.exception("unloading model %s after its TTL failed", entry.name)


def _expired(entry: ModelEntry, now: float) -> bool:
    return (
        entry.state is ModelState.STARTED
        and 0 < entry.ttl_s <= now - entry.last_used
        and entry.idle
        and not entry.pinned
    )
