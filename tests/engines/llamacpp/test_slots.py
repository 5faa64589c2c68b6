"""``SlotManager`` against a fake KV memory that tracks which tokens each stream holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.engines.llamacpp.slots import MIN_COPY_PREFIX, SlotManager


@dataclass
class FakeMemory:
    """Each stream's KV as the list of positions it holds; copies replace the destination."""

    n_slots: int
    n_swa: int = 0
    kv: dict[int, int] = field(default_factory=dict)  # seq_id -> number of positions held
    copies: list[tuple[int, int]] = field(default_factory=list)

    def seq_rm(self, seq_id: int, start: int = -1) -> bool:
        held = self.kv.get(seq_id, 0)
        self.kv[seq_id] = 0 if start < 0 else min(held, start)
        return True

    def seq_cp(self, src: int, dst: int) -> None:
        self.copies.append((src, dst))
        self.kv[dst] = self.kv.get(src, 0)

    def seq_pos_min(self, seq_id: int) -> int:
        return 0 if self.kv.get(seq_id) else -1


@dataclass
class Owner:
    kv_tokens: list[int]


def prompt(first: int, n: int = 40) -> list[int]:
    return [first, *range(1000, 1000 + n - 1)]


def run(slots: SlotManager, mem: FakeMemory, tokens: list[int]) -> tuple[Owner, int, int]:
    owner = Owner(tokens)
    seq_id, reused = slots.acquire(owner, tokens)
    mem.kv[seq_id] = len(tokens)  # the prompt gets prefilled
    return owner, seq_id, reused


def test_new_sequences_take_the_lowest_free_slots() -> None:
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    ids = [run(slots, mem, prompt(i))[1] for i in range(3)]
    assert ids == [0, 1, 2]
    slots.release(1, keep_cache=True)
    assert run(slots, mem, prompt(9))[1] == 1


def test_compact_closes_gaps_and_keeps_the_cache_it_displaces() -> None:
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    owners = [run(slots, mem, prompt(i)) for i in range(3)]
    slots.release(0, keep_cache=True)  # a finished chat turn, cached in slot 0
    moves = slots.compact()
    assert moves == [(owners[2][0], 0)]  # the highest running sequence moved into the gap
    assert mem.kv[0] == 40
    # slot 0's cached turn was moved aside first, so a follow-up still finds it.
    follow_up = [*prompt(0), 7, 8]
    _, seq_id, reused = run(slots, mem, follow_up)
    assert seq_id == 2 and reused == 40
    assert slots.compact() == []


def test_a_long_prefix_in_another_slot_is_copied_in() -> None:
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    run(slots, mem, prompt(5))
    _, seq_id, reused = run(slots, mem, [*prompt(5), 1, 2, 3])
    assert seq_id == 1
    assert reused == 40 >= MIN_COPY_PREFIX
    assert (0, 1) in mem.copies


def test_short_prefixes_are_prefilled_again() -> None:
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    run(slots, mem, prompt(5, n=4))
    _, seq_id, reused = run(slots, mem, [*prompt(5, n=4), 1, 2])
    assert (seq_id, reused) == (1, 0)
    assert mem.copies == []


def test_the_last_prompt_token_is_always_decoded() -> None:
    mem = FakeMemory(2)
    slots = SlotManager(mem, 2)
    _, seq_id, _ = run(slots, mem, prompt(3))
    slots.release(seq_id, keep_cache=True)
    again, reused = slots.acquire(Owner(prompt(3)), prompt(3))
    assert (again, reused) == (seq_id, len(prompt(3)) - 1)
    assert mem.kv[seq_id] == len(prompt(3)) - 1  # trimmed to leave the last token to decode


def test_fork_copies_into_the_lowest_free_slot() -> None:
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    _, parent, _ = run(slots, mem, prompt(1))
    child = slots.fork(Owner(prompt(1)), parent)
    assert child == 1
    assert mem.kv[1] == mem.kv[0] == 40


def test_a_conversation_cache_survives_an_unrelated_request_in_between() -> None:
    """A short prompt sharing only a few tokens with the lowest free slot's cache reuses
    them in place, but the longer cache moves to a spare slot first (Responses API
    continuations and multi-turn chats then find their whole earlier prompt)."""
    mem = FakeMemory(4)
    slots = SlotManager(mem, 4)
    _, seq_id, _ = run(slots, mem, prompt(5))
    slots.release(seq_id, keep_cache=True)
    _, seq_id, reused = run(slots, mem, [5, 7, 8, 9, 10, 11])
    assert (seq_id, reused) == (0, 1)
    assert (0, 1) in mem.copies  # the conversation's cache went aside
    slots.release(seq_id, keep_cache=True)
    _, seq_id, reused = run(slots, mem, [*prompt(5), 1, 2, 3])
    assert reused == 40
