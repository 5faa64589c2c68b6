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

# A copy between KV streams costs about 1 ms at the next decode, what prefilling a token
# or two costs; below this many shared tokens, prefilling them again is as cheap.
MIN_COPY_PREFIX = 8


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
    """Hands out KV slots and reuses cached prefixes; see the module docstring.

    Running sequences are kept on the lowest slot ids, with no gaps. With per-sequence KV
    streams llama.cpp puts only consecutive sequence ids into one ubatch, so a batch over
    slots {0, 2, 4} runs as three passes over the weights instead of one (8 streams on
    every other slot: 95 ms a step against 47 ms on slots 0-7). A new sequence takes the
    lowest free slot, and ``compact`` moves the highest running sequences down into gaps.
    Moving KV between streams is a deferred ``llama_memory_seq_cp`` that costs about 1 ms
    at the next decode, so a cache in the way is moved aside rather than dropped.
    """

    def __init__(self, memory: KVMemory, n_slots: int) -> None:
        self._memory = memory
        self._slots = [Slot(i) for i in range(n_slots)]
        self._clock = itertools.count(1)

    @property
    def free_count(self) -> int:
        return sum(1 for s in self._slots if s.owner is None)

    def acquire(self, owner: Holder, prompt: list[int]) -> tuple[int, int]:
        """Give ``owner`` the lowest free slot for ``prompt``; return (seq_id, tokens already
        in its KV). The longest cached prefix anywhere, free or running, is reused: in place,
        or copied in when it saves at least ``MIN_COPY_PREFIX`` tokens.

        At least the last prompt token is always left to decode, so its logits exist.
        """
        limit = len(prompt) - 1
        slot = self._lowest_free()
        donor = max(self._slots, key=lambda s: (common_prefix(s.content, prompt), s is slot))
        shared = min(common_prefix(donor.content, prompt), limit)
        if donor is slot and shared > 0:
            if shared < len(slot.cached):
                # Only part of this slot's cache is this prompt's: keep the rest (a
                # conversation's earlier turns, say) in a spare slot before it is cut.
                self._move_cache_aside(slot, busy=set())
            reuse = shared
        else:
            self._move_cache_aside(slot, busy={donor.seq_id})
            reuse = shared if donor is not slot and shared >= MIN_COPY_PREFIX else 0
            if reuse:
                self._memory.seq_cp(donor.seq_id, slot.seq_id)
        reuse = self._trim(slot.seq_id, reuse)
        self._take(slot, owner)
        return slot.seq_id, reuse

    def fork(self, owner: Holder, src_seq_id: int) -> int:
        """Give ``owner`` a slot holding a copy of all of ``src_seq_id``'s KV (``n > 1``)."""
        slot = self._lowest_free()
        self._move_cache_aside(slot, busy={src_seq_id})
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

    def compact(self) -> list[tuple[Holder, int]]:
        """Move running sequences from the highest slots into lower free ones until the
        running slots are 0..k-1; return (owner, new seq_id) for each move. The slot a
        sequence leaves keeps a copy of its KV as prefix cache."""
        moves: list[tuple[Holder, int]] = []
        while True:
            free = self._first_free()
            high = max(
                (s for s in self._slots if s.owner is not None),
                key=lambda s: s.seq_id,
                default=None,
            )
            if free is None or high is None or free.seq_id > high.seq_id:
                return moves
            owner = high.owner
            assert owner is not None
            self._move_cache_aside(free, busy={high.seq_id})
            self._memory.seq_cp(high.seq_id, free.seq_id)
            self._take(free, owner)
            high.owner, high.cached, high.last_used = None, owner.kv_tokens, next(self._clock)
            moves.append((owner, free.seq_id))

    def _lowest_free(self) -> Slot:
        slot = self._first_free()
        if slot is None:
            raise RuntimeError("no free KV slot (the scheduler checks free_count first)")
        return slot

    def _first_free(self) -> Slot | None:
        return next((s for s in self._slots if s.owner is None), None)

    def _move_cache_aside(self, slot: Slot, busy: set[int]) -> None:
        """Before ``slot`` is overwritten, copy its cached prefix into the free slot whose
        cache is worth least (empty, else least recently used), if that one is worth less.
        Slots in ``busy`` are read by a copy queued after this one and are left alone."""
        if not slot.cached:
            return
        spare = min(
            (s for s in self._slots if s.owner is None and s is not slot and s.seq_id not in busy),
            key=lambda s: (len(s.cached) > 0, s.last_used),
            default=None,
        )
        if spare is not None and (not spare.cached or spare.last_used < slot.last_used):
            self._memory.seq_cp(slot.seq_id, spare.seq_id)
            spare.cached, spare.last_used = slot.cached, slot.last_used
        slot.cached = []

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
