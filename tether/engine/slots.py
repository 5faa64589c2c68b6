"""``SlotManager``: which llama.cpp sequence id (KV slot) each sequence uses, and prefix reuse.

A slot is free or owned by a running sequence. A free slot keeps the KV of the last
sequence that used it, as an evictable prefix cache: a new prompt that starts with those
tokens reuses them instead of prefilling them again. A prompt can also borrow the prefix of
a running sequence by copying its KV (``llama_memory_seq_cp``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

# Copying a whole KV stream costs a few milliseconds; below this many shared tokens a
# fresh prefill is as cheap.
MIN_COPY_PREFIX = 32


class KVMemory(Protocol):
    """The KV operations the slot manager needs (``ModelRunner`` provides them)."""

    n_swa: int

    def seq_rm(self, seq_id: int, start: int = -1) -> bool: ...

    def seq_cp(self, src: int, dst: int) -> None: ...

    def seq_pos_min(self, seq_id: int) -> int: ...


class Holder(Protocol):
    """What a slot's owner exposes: the tokens whose KV the slot holds."""

    @property
    def kv_tokens(self) -> list[int]: ...


@dataclass(slots=True)
class Slot:
    seq_id: int
    owner: Holder | None = None
    cached: list[int] = field(default_factory=list)
    last_used: int = 0

    @property
    def content(self) -> list[int]:
        return self.owner.kv_tokens if self.owner is not None else self.cached


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SlotManager:
    """Hands out KV slots and reuses cached prefixes; see the module docstring."""

    def __init__(self, memory: KVMemory, n_slots: int) -> None:
        self._memory = memory
        self._slots = [Slot(i) for i in range(n_slots)]
        self._clock = itertools.count(1)

    @property
    def free_count(self) -> int:
        return sum(1 for s in self._slots if s.owner is None)

    def acquire(self, owner: Holder, prompt: list[int]) -> tuple[int, int]:
        """Give ``owner`` a slot for ``prompt``; return (seq_id, tokens already in its KV).

        At least the last prompt token is always left to decode, so its logits exist.
        """
        limit = len(prompt) - 1
        free = [s for s in self._slots if s.owner is None]
        best_free = max(free, key=lambda s: (common_prefix(s.content, prompt), -s.last_used))
        reuse = min(common_prefix(best_free.content, prompt), limit)
        busy = [s for s in self._slots if s.owner is not None]
        donor = max(busy, key=lambda s: common_prefix(s.content, prompt), default=None)
        borrow = min(common_prefix(donor.content, prompt), limit) if donor else 0
        if donor is not None and borrow >= max(reuse + 1, MIN_COPY_PREFIX):
            slot = self._evictable(free)
            self._memory.seq_rm(slot.seq_id)
            self._memory.seq_cp(donor.seq_id, slot.seq_id)
            reuse = borrow
        else:
            slot = best_free if reuse > 0 else self._evictable(free)
        reuse = self._trim(slot.seq_id, reuse)
        self._take(slot, owner)
        return slot.seq_id, reuse

    def fork(self, owner: Holder, src_seq_id: int) -> int:
        """Give ``owner`` a slot holding a copy of all of ``src_seq_id``'s KV (``n > 1``)."""
        slot = self._evictable([s for s in self._slots if s.owner is None])
        self._memory.seq_rm(slot.seq_id)
        self._memory.seq_cp(src_seq_id, slot.seq_id)
        self._take(slot, owner)
        return slot.seq_id

    def release(self, seq_id: int, keep_cache: bool) -> None:
        """Free the slot; keep its KV as prefix cache, or drop it (aborts) at once."""
        slot = self._slots[seq_id]
        slot.cached = slot.owner.kv_tokens if (keep_cache and slot.owner) else []
        slot.owner = None
        slot.last_used = next(self._clock)
        if not slot.cached:
            self._memory.seq_rm(seq_id)

    def _evictable(self, free: list[Slot]) -> Slot:
        return min(free, key=lambda s: (len(s.cached) > 0, s.last_used))

    def _take(self, slot: Slot, owner: Holder) -> None:
        slot.owner = owner
        slot.cached = []
        slot.last_used = next(self._clock)

    def _trim(self, seq_id: int, keep: int) -> int:
        """Cut the slot's KV to its first ``keep`` tokens; return how many really remain.

        A sliding-window cache only keeps the last n_swa positions, so a prefix that ends
        further back than that can't be resumed (llama.cpp's server makes the same check).
        """
        if keep > 0 and self._memory.seq_rm(seq_id, keep):
            pos_min = self._memory.seq_pos_min(seq_id)
            if self._memory.n_swa == 0 or pos_min <= max(0, keep - self._memory.n_swa):
                return keep
        self._memory.seq_rm(seq_id)
        return 0
