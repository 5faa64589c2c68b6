"""``EngineCore``: one step of continuous batching — schedule, execute, make output."""

from __future__ import annotations

import random

import numpy as np

from tether.engine.detokenizer import Detokenizer
from tether.engine.errors import ContextLengthExceededError, InvalidRequestError
from tether.engine.request import FinishReason, GenerationRequest, StepOutput, TokenInfo, TopLogprob
from tether.engine.runner import ModelRunner
from tether.engine.sampling import Sampler, logsumexp, top_logprobs
from tether.engine.scheduler import Chunk, Scheduler, SchedulerOutput
from tether.engine.sequence import Sequence, SequenceStatus
from tether.engine.slots import SlotManager


class EngineCore:
    """Owns the runner and the scheduler; everything here runs on the engine thread,
    except ``new_sequences``, which only reads the vocabulary."""

    def __init__(
        self, runner: ModelRunner, ctx_per_seq: int, batch_tokens: int, max_queue: int
    ) -> None:
        self.runner = runner
        self.ctx_per_seq = ctx_per_seq
        n_slots = runner.config.n_seq_max
        self.scheduler = Scheduler(SlotManager(runner, n_slots), batch_tokens, max_queue)
        self._tokens: dict[int, tuple[str, bool]] = {}
        self.prompt_tokens_computed = 0  # prompt tokens actually prefilled (not reused)
        self._scratch = np.empty(runner.n_vocab, dtype=np.float32)

    # -- requests -------------------------------------------------------------------------

    def new_sequences(self, request: GenerationRequest) -> list[Sequence]:
        """Validate a request and build its choices (safe to call off the engine thread)."""
        params, prompt = request.params, request.prompt_token_ids
        if not prompt:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if any(not 0 <= t < self.runner.n_vocab for t in prompt):
            raise InvalidRequestError(
                "the prompt has token ids outside the vocabulary", param="prompt"
            )
        if len(prompt) + params.max_tokens > self.ctx_per_seq:
            raise ContextLengthExceededError(len(prompt), params.max_tokens, self.ctx_per_seq)
        if params.n > self.runner.config.n_seq_max:
            raise InvalidRequestError(
                f"n: at most {self.runner.config.n_seq_max} choices on this server", param="n"
            )
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        seqs = [self._new_sequence(request, i, (seed + i) & 0xFFFFFFFF) for i in range(params.n)]
        seqs[0].forks = seqs[1:]
        return seqs

    def _new_sequence(self, request: GenerationRequest, index: int, seed: int) -> Sequence:
        params = request.params
        sampler = Sampler(params, seed, self.runner.vocab, self.runner.n_vocab, self.runner.eog_ids)
        detok = Detokenizer(self.runner.piece, params.stop)
        return Sequence(
            request.request_id, index, request.prompt_token_ids, params, seed, sampler, detok
        )

    def add(self, first_choice: Sequence) -> None:
        self.scheduler.add(first_choice)

    def abort(self, request_id: str) -> None:
        for seq in self.scheduler.abort(request_id):
            # Choices still waiting for their fork never ran: their samplers close here too.
            for choice in (seq, *seq.forks):
                choice.sampler.close()

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    # -- the step -------------------------------------------------------------------------

    def step(self) -> list[StepOutput]:
        """Schedule, execute, and make output."""
        plan = self.scheduler.schedule()
        if plan.empty:
            return []
        self._execute(plan)
        return self._update(plan)

    def _execute(self, plan: SchedulerOutput) -> None:
        batch = self.runner.batch
        batch.clear()
        for chunk in plan.chunks:
            chunk.batch_index = batch.add(
                chunk.tokens, chunk.start_pos, chunk.seq.slot, chunk.sample
            )
        self.runner.decode()

    def _update(self, plan: SchedulerOutput) -> list[StepOutput]:
        logits = self.runner.logits(self.runner.batch.n_outputs)
        outputs: list[StepOutput] = []
        row_index = 0
        for chunk in plan.chunks:
            if chunk.seq.prefilling:
                self.prompt_tokens_computed += len(chunk.tokens)
            chunk.seq.num_computed += len(chunk.tokens)
            if not chunk.sample:
                continue
            row = logits[row_index]
            row_index += 1
            for seq in self._samplers_of(chunk):
                self._sample(seq, chunk, row)
                outputs.append(self._output(seq))
                if seq.finish_reason is not None:
                    self.scheduler.finish(seq)
        return outputs

    def _samplers_of(self, chunk: Chunk) -> list[Sequence]:
        """The sequences that sample from this chunk's logits: itself, plus new forks."""
        seq = chunk.seq
        if seq.num_generated == 0 and seq.forks:
            return [seq, *self.scheduler.start_forks(seq)]
        return [seq]

    def _sample(self, seq: Sequence, chunk: Chunk, row: np.ndarray) -> None:
        token = seq.sampler.sample(self.runner.ctx, chunk.batch_index, row)
        seq.tokens.append(token)
        params = seq.params
        if token in self.runner.eog_ids and not params.ignore_eos:
            seq.finish(FinishReason.STOP)
            return
        lse = logsumexp(row, self._scratch)
        seq.new_tokens.append(self._token_info(token, row, lse, params.logprobs))
        seq.new_text += seq.detokenizer.add_token(token)
        if seq.detokenizer.stopped:
            seq.finish(FinishReason.STOP)
        elif seq.num_generated >= params.max_tokens or len(seq.tokens) >= self.ctx_per_seq:
            seq.finish(FinishReason.LENGTH)

    def _token_info(self, token: int, row: np.ndarray, lse: float, k: int | None) -> TokenInfo:
        alternatives = None
        if k:
            alternatives = tuple(
                TopLogprob(t, self.token_text(t), lp) for t, lp in top_logprobs(row, lse, k)
            )
        text, special = self._token(token)
        return TokenInfo(
            id=token,
            text=text,
            logprob=float(row[token]) - lse,
            special=special,
            top_logprobs=alternatives,
        )

    def token_text(self, token: int) -> str:
        return self._token(token)[0]

    def _token(self, token: int) -> tuple[str, bool]:
        """A token's text and whether it is special, cached: both are asked per token."""
        known = self._tokens.get(token)
        if known is None:
            known = self._tokens[token] = (
                self.runner.token_text(token),
                self.runner.is_special(token),
            )
        return known

    def _output(self, seq: Sequence) -> StepOutput:
        out = StepOutput(
            request_id=seq.request_id,
            index=seq.index,
            tokens=seq.new_tokens,
            text=seq.new_text,
            finish_reason=seq.finish_reason,
            prompt_tokens=seq.num_prompt,
            completion_tokens=seq.num_generated,
            cached_tokens=seq.num_cached,
            seed=seq.seed,
            queue_time_s=seq.queue_time_s,
        )
        seq.new_tokens = []
        seq.new_text = ""
        return out

    def close(self) -> None:
        for seq in list(self.scheduler.running):
            self.abort(seq.request_id)
        self.runner.close()


__all__ = ["EngineCore", "SequenceStatus"]
