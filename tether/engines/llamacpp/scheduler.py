"""``Scheduler``: decides, each step, which tokens of which sequences go into the batch."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from tether.engine.errors import QueueFullError
from tether.engines.llamacpp.drafter import Candidate, Drafter
from tether.engines.llamacpp.sequence import Sequence, SequenceStatus
from tether.engines.llamacpp.slots import SlotManager

# Rows of logits one step may ask for prompt logprobs: each is a 262,144-float row (1 MB for
# the default model) in llama.cpp's output buffer, which grows to the largest step's need.
PROMPT_LOGPROB_ROWS = 64

# Tokens a grammar forced that ride along with a stream's decode token in one step. Each
# needs its own logits row (its logprob goes on the wire), and a row is the LM head over the
# whole vocabulary: on the embedded model (262,144 tokens, 640 wide) most of a decode's
# work. Measured on a 2-core AMD EPYC, one stream, 128-token JSON answers (issue 24):
# inter-token p50 / p99 and tokens/s with 0 / 1 / 2 / all forced tokens per step were
# 14.7 / 21.2 ms, 60.5; 14.8 / 27.3 ms, 61.3; 15.1 / 31.8 ms, 60.4; 15.3 / 34.0 ms, 59.5
# (unconstrained: 14.8 / 21.7 ms, 66.1). Batching them saves steps, not time, and
# lengthens the gaps: one per step.
FORCED_PER_STEP = 1


@dataclass(slots=True)
class Chunk:
    """Consecutive tokens of one sequence in this step's batch.

    ``sample`` is set when the chunk ends where a token must be sampled (a decode token,
    or the last chunk of a prompt); ``batch_index`` is filled in by the executor. A decode
    chunk may carry tokens a grammar forced after the last sampled one, or ``drafted``
    tokens the ``Drafter`` proposes (not in ``seq.tokens`` until the sampler agrees): then
    every row is asked for (``all_logits``), each giving the distribution of the position
    after its token.
    """

    seq: Sequence
    tokens: list[int]
    start_pos: int
    sample: bool
    batch_index: int = -1
    all_logits: bool = False  # every row: prompt logprobs, or a decode chunk's
    drafted: int = 0  # tokens at the end of ``tokens`` that were drafted


@dataclass(slots=True)
class SchedulerOutput:
    """One step's plan: decode chunks first, then prefill chunks, within the token budget."""

    chunks: list[Chunk] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.chunks


class Scheduler:
    """Continuous batching with chunked prefill.

    Each step every decoding sequence gets one token first; prompts then get the rest of the
    token budget in arrival order, a chunk at a time. While any sequence is decoding, a
    step carries at most ``prefill_chunk`` prompt tokens, so a new prompt stalls running
    streams by at most one such chunk per step (vLLM's rule: decode first, bounded
    prefill); with nobody decoding, a prompt may take the whole budget. A request is
    admitted only when all of its ``n`` choices get a slot; its extra choices fork the
    first one's KV once the prompt is in. With a ``drafter``, decode chunks may carry
    drafted tokens after their last sampled one (speculative decoding), before any prompt
    work.
    """

    def __init__(
        self,
        slots: SlotManager,
        batch_tokens: int,
        max_queue: int,
        prefill_chunk: int | None = None,
        drafter: Drafter | None = None,
    ) -> None:
        self.slots = slots
        self.drafter = drafter
        self.batch_tokens = batch_tokens
        self.prefill_chunk = prefill_chunk or batch_tokens
        self.max_queue = max_queue
        self.waiting: deque[Sequence] = deque()  # first choice of each queued request
        self.running: list[Sequence] = []
        self._reserved = 0  # slots promised to admitted requests' not-yet-forked choices

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def check_room(self, incoming: int = 0) -> None:
        """Raise ``QueueFullError`` if one more request (after ``incoming``) can't queue."""
        if len(self.waiting) + incoming >= self.max_queue:
            raise QueueFullError(f"the queue is full ({self.max_queue} requests waiting)")

    def add(self, seq: Sequence) -> None:
        """Queue a request by its first choice (the others hang off ``seq.forks``)."""
        self.waiting.append(seq)

    def abort(self, request_id: str) -> list[Sequence]:
        """Remove a request's sequences wherever they are; free their KV at once."""
        gone = [s for s in self.waiting if s.request_id == request_id]
        for seq in gone:
            self.waiting.remove(seq)
        for seq in [s for s in self.running if s.request_id == request_id]:
            self._drop(seq, keep_cache=False)
            gone.append(seq)
        for seq in gone:
            seq.status = SequenceStatus.FINISHED
        return gone

    def finish(self, seq: Sequence) -> None:
        """Free a finished sequence's slot; its KV stays as prefix cache."""
        self._drop(seq, keep_cache=True)

    def _drop(self, seq: Sequence, keep_cache: bool) -> None:
        self.running.remove(seq)
        seq.close()
        if seq.slot >= 0:
            self.slots.release(seq.slot, keep_cache)
        for child in seq.forks:  # children that never got their fork
            if child.status is SequenceStatus.FORKING:
                child.status = SequenceStatus.FINISHED
                self._reserved -= 1

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.batch_tokens
        decoding = [
            seq
            for seq in self.running
            if not seq.prefilling and seq.status is SequenceStatus.RUNNING
        ]
        for left, seq in enumerate(reversed(decoding)):
            # The last sampled token, then up to FORCED_PER_STEP the grammar forced after it
            # (their rows give their logprobs), within the budget left beyond one per stream.
            start = seq.num_computed
            room = budget - (len(decoding) - 1 - left)
            n = max(1, min(len(seq.tokens) - start, room, 1 + FORCED_PER_STEP))
            reaches_end = start + n == len(seq.tokens)
            out.chunks.append(
                Chunk(seq, seq.tokens[start : start + n], start, reaches_end, -1, True)
            )
            budget -= n
        if self.drafter is not None and out.chunks:
            budget -= self._draft(out.chunks, budget - self._prompt_work(budget))
        if out.chunks:  # streams are decoding: bound the prompt work they wait for
            budget = min(budget, self.prefill_chunk)
        for seq in self.running:
            if budget > 0 and seq.prefilling:
                budget -= self._prefill(seq, budget, out)
        while budget > 0 and self.waiting and self._admit(self.waiting[0]):
            budget -= self._prefill(self.waiting.popleft(), budget, out)
        # Close the gaps finished sequences left (SlotManager explains why), then order the
        # batch by slot: llama.cpp splits it wherever sequence ids stop being consecutive.
        for holder, slot in self.slots.compact():
            assert isinstance(holder, Sequence)
            holder.slot = slot
        out.chunks.sort(key=lambda chunk: chunk.seq.slot)
        return out

    def _prompt_work(self, budget: int) -> int:
        """The prompt tokens this step keeps for prompts waiting or being prefilled: drafts
        never take them."""
        waiting = sum(s.remaining_prompt() for s in self.running if s.prefilling)
        if self.waiting and self.slots.free_count - self._reserved > len(self.waiting[0].forks):
            waiting += self.waiting[0].num_prompt
        return min(waiting, self.prefill_chunk, budget)

    def _draft(self, chunks: list[Chunk], room: int) -> int:
        """Add the drafter's tokens to decode chunks that end at a sampled token; return
        how many were added."""
        assert self.drafter is not None
        ordered = sorted(chunks, key=lambda chunk: chunk.seq.slot)
        # The step makes at least one token per chunk: drafts may fill the rest of max_tokens.
        drafting = [
            (at, chunk)
            for at, chunk in enumerate(ordered)
            if chunk.sample and len(chunk.tokens) == 1
        ]
        candidates = [
            Candidate(
                c.seq.tokens, c.seq.draft, c.seq.params.max_tokens - c.seq.num_generated - 1, at
            )
            for at, c in drafting
        ]
        rows = [len(chunk.tokens) for chunk in ordered]
        plans = self.drafter.plan(candidates, rows, room)
        added = 0
        for (_, chunk), draft in zip(drafting, plans, strict=True):
            if draft:
                chunk.tokens.extend(draft)
                chunk.drafted = len(draft)
                added += len(draft)
        return added

    def _admit(self, seq: Sequence) -> bool:
        if self.slots.free_count - self._reserved < 1 + len(seq.forks):
            return False
        # Prompt logprobs need every prompt token's logits: no prefix may be reused.
        prompt = seq.tokens[: 1 if seq.params.prompt_logprobs else seq.num_prompt]
        seq.slot, seq.num_cached = self.slots.acquire(seq, prompt)
        seq.num_computed = seq.num_cached
        seq.status = SequenceStatus.RUNNING
        seq.queue_time_s = time.monotonic() - seq.arrived
        self.running.append(seq)
        for child in seq.forks:
            child.status = SequenceStatus.FORKING
            child.queue_time_s = seq.queue_time_s
        self._reserved += len(seq.forks)
        return True

    def _prefill(self, seq: Sequence, budget: int, out: SchedulerOutput) -> int:
        scored = seq.params.prompt_logprobs
        n = min(seq.remaining_prompt(), budget, PROMPT_LOGPROB_ROWS if scored else budget)
        start = seq.num_computed
        last = start + n == seq.num_prompt
        out.chunks.append(Chunk(seq, seq.tokens[start : start + n], start, last, all_logits=scored))
        return n

    def start_forks(self, parent: Sequence) -> list[Sequence]:
        """After ``parent``'s prompt is in the KV, give each child a copy and run it."""
        started = []
        for child in parent.forks:
            if child.status is not SequenceStatus.FORKING:
                continue
            self._reserved -= 1
            child.slot = self.slots.fork(child, parent.slot)
            child.num_computed = parent.num_computed
            child.num_cached = parent.num_cached
            child.status = SequenceStatus.RUNNING
            self.running.append(child)
            started.append(child)
        return started
