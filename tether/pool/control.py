"""``ModelControl``: what Together's management API asks of the pool (``tether.api.management``):
pin or unpin a model, set its idle TTL, start it in the background, stop it."""

from __future__ import annotations

import asyncio

from tether.pool.entry import ModelEntry, ModelState
from tether.pool.pool import ModelPool


class ModelControl:
    def __init__(self, pool: ModelPool) -> None:
        self.pool = pool

    def set_pinned(self, entry: ModelEntry, pinned: bool) -> None:
        entry.pinned = pinned
        self.pool.changed()

    def set_ttl(self, entry: ModelEntry, ttl_s: float) -> None:
        entry.ttl_s = ttl_s
        entry.last_used = self.pool.now()  # the new timeout counts from now
        self.pool.changed()  # the reaper looks as often as the shortest TTL needs

    def start_model(self, entry: ModelEntry) -> None:
        """Load ``entry`` in the background; the answer says ``STARTING`` meanwhile."""
        self.pool.start_loading(entry)

    async def stop_model(self, entry: ModelEntry) -> None:
        """Unpin ``entry`` and unload it: now when idle, else once its requests are done
        (in the background). A load under way finishes first. A request that asks for the
        model later loads it again."""
        entry.pinned = False
        task = entry.load_task
        if task is not None:
            await asyncio.wait((task,))
        if entry.idle:
            await self.pool.unload(entry, reason="stopped", when=_stoppable)
        else:
            self.pool.track(asyncio.get_running_loop().create_task(self._unload_when_idle(entry)))

    async def _unload_when_idle(self, entry: ModelEntry) -> None:
        while entry.state is ModelState.STARTED and not entry.pinned:
            if entry.idle:
                await self.pool.unload(entry, reason="stopped", when=_stoppable)
                continue
            await self.pool.wait_changed()


def _stoppable(entry: ModelEntry) -> bool:
    return entry.idle and not entry.pinned
