"""``Sequence``: one choice of one request while the engine works on it."""

from __future__ import annotations

import enum
import time

import llguidance

from tether.engine.request import FinishReason, TokenInfo
from tether.engine.sampling_params import SamplingParams
from tether.engines.llamacpp.detokenizer import Detokenizer
from tether.engines.llamacpp.drafter import DraftState
from tether.engines.llamacpp.sampler import Sampler


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # queued, no KV slot yet
    FORKING = "forking"  # n > 1: waits for its parent's prompt, then copies the parent's KV
    RUNNING = "running"  # holds a slot: prefilling while num_computed < len(prompt), then decoding
    FINISHED = "finished"


class Sequence:
    """Token state of one choice: prompt + generated ``tokens``, of which ``num_computed``
    have their KV in the sequence's slot. It owns its detokenizer, and its sampler from its
    first sampled token until it leaves the running set (``close``): a request that waits,
    is refused or is aborted before it samples never allocates C objects (issue 9)."""

    def __init__(
        self,
        request_id: str,
        index: int,
        prompt: list[int],
        params: SamplingParams,
        constraint: llguidance.LLMatcher | None,
        seed: int,
        detokenizer: Detokenizer,
    ) -> None:
        self.request_id = request_id
        self.index = index
        self.tokens = list(prompt)
        self.num_prompt = len(prompt)
        self.params = params
        # params.structured compiled: a matcher at its start state, copied by the sampler
        self.constraint = constraint
        self.seed = seed
        self.sampler: Sampler | None = None
        self.detokenizer = detokenizer
        self.status = SequenceStatus.WAITING
        self.slot = -1
        self.num_computed = 0
        self.num_cached = 0
        self.pending = 0  # tokens at the end of ``tokens`` a grammar forced, not yet emitted
        self.finish_reason: FinishReason | None = None
        self.forks: list[Sequence] = []  # children that copy this prompt's KV (n > 1)
        self.draft = DraftState()  # speculative decoding: its n-gram index and acceptance
        self.arrived = time.monotonic()
        self.queue_time_s = 0.0
        self.new_tokens: list[TokenInfo] = []
        self.new_text = ""
        # Filled during prefill when params.prompt_logprobs asks (the first token has none).
        # Only the first choice prefills the prompt, so only it scores it.
        scored = params.prompt_logprobs and index == 0
        self.prompt_logprobs: list[float | None] | None = [None] if scored else None

    @property
    def num_generated(self) -> int:
        """Completion tokens emitted so far (forced tokens count once they are)."""
        return len(self.tokens) - self.num_prompt - self.pending

    @property
    def prefilling(self) -> bool:
        return self.num_computed < self.num_prompt

    @property
    def kv_tokens(self) -> list[int]:
        """The tokens whose KV this sequence's slot holds."""
        return self.tokens[: self.num_computed]

    def remaining_prompt(self) -> int:
        return self.num_prompt - self.num_computed

    def finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.status = SequenceStatus.FINISHED
        self.new_text += self.detokenizer.finalize()

    def close(self) -> None:
        """Free the sampler; the scheduler calls this once, as the sequence leaves ``running``."""
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None
