"""``EngineCore``: one step of continuous batching — schedule, execute, make output."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace

import llguidance
import numpy as np

from tether.engine.errors import (
    ContextLengthExceededError,
    EngineError,
    InvalidRequestError,
    StructuredOutputError,
)
from tether.engine.guidance import GuidanceOptions
from tether.engine.request import (
    FinishReason,
    GenerationRequest,
    SpecCounts,
    StepOutput,
    StepTiming,
    TokenInfo,
    TopLogprob,
)
from tether.engines.llamacpp.detokenizer import Detokenizer
from tether.engines.llamacpp.drafter import Drafter
from tether.engines.llamacpp.guide import Constraints, GuidanceVocab, Guide
from tether.engines.llamacpp.runner import ModelRunner
from tether.engines.llamacpp.sampler import Sampler, logsumexp, top_logprobs
from tether.engines.llamacpp.scheduler import Chunk, Scheduler, SchedulerOutput
from tether.engines.llamacpp.sequence import Sequence, SequenceStatus
from tether.engines.llamacpp.slots import SlotManager

log = logging.getLogger(__name__)


class EngineCore:
    """Owns the runner and the scheduler; everything here runs on the engine thread,
    except ``new_sequences``, which only reads the vocabulary."""

    def __init__(
        self,
        runner: ModelRunner,
        ctx_per_seq: int,
        batch_tokens: int,
        max_queue: int,
        prefill_chunk: int | None = None,
        guidance: GuidanceOptions | None = None,
        max_draft: int = 0,
    ) -> None:
        self.runner = runner
        self.vocab = runner.vocab
        self.ctx_per_seq = ctx_per_seq
        n_slots = runner.config.n_seq_max
        # Speculative decoding takes drafted tokens back from the KV cache, which a
        # recurrent model's state cannot do.
        self.drafter = Drafter(max_draft) if max_draft > 0 and runner.can_rollback else None
        self.scheduler = Scheduler(
            SlotManager(runner, n_slots), batch_tokens, max_queue, prefill_chunk, self.drafter
        )
        self.prompt_tokens_computed = 0  # prompt tokens actually prefilled (not reused)
        self._scratch = np.empty(runner.n_vocab, dtype=np.float32)
        self.constraints = Constraints(GuidanceVocab(self.vocab), guidance)
        # Requests that failed inside a step, for the caller to report; the engine goes on.
        self.failures: list[tuple[str, EngineError]] = []
        self.decode_timing = StepTiming()  # replaced, never mutated: safe to read anywhere

    # -- requests -------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        """The cheap checks: prompt, context length and ``n`` (safe off the engine thread)."""
        params, prompt = request.params, request.prompt_token_ids
        if not prompt:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if any(not 0 <= t < self.vocab.n_vocab for t in prompt):
            raise InvalidRequestError(
                "the prompt has token ids outside the vocabulary", param="prompt"
            )
        outside = [t for t in params.logit_bias if not 0 <= t < self.vocab.n_vocab]
        if outside:
            raise InvalidRequestError(
                f"logit_bias: token ids outside the vocabulary (0..{self.vocab.n_vocab - 1}): "
                f"{outside[:5]}",
                param="logit_bias",
            )
        if len(prompt) + params.max_tokens > self.ctx_per_seq:
            raise ContextLengthExceededError(len(prompt), params.max_tokens, self.ctx_per_seq)
        if params.n > self.runner.config.n_seq_max:
            raise InvalidRequestError(
                f"n: at most {self.runner.config.n_seq_max} choices on this server", param="n"
            )

    def new_sequences(self, request: GenerationRequest) -> list[Sequence]:
        """Compile and check the constraint, then build a validated request's choices (safe
        off the engine thread). Allocates nothing in C: each choice's sampler is built when
        it first samples.
        """
        params = request.params
        constraint = self._constraint(request)
        if constraint is None and params.structured is not None:
            params = replace(params, structured=None)  # lazy calls it could not express
            request = replace(request, params=params)
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        seqs = [
            self._new_sequence(request, constraint, i, (seed + i) & 0xFFFFFFFF)
            for i in range(params.n)
        ]
        seqs[0].forks = seqs[1:]
        return seqs

    def _constraint(self, request: GenerationRequest) -> llguidance.LLMatcher | None:
        """The request's compiled constraint; one the grammar compiler refuses is a 400
        before anything is queued."""
        spec = request.params.structured
        if spec is None:
            return None
        try:
            return self.constraints.compile(spec)
        except StructuredOutputError:
            if spec.lazy_calls is None:
                raise
            # Constraining calls the model opens on its own is a bonus of tool_choice auto:
            # tools whose schemas cannot be enforced still work, unconstrained.
            log.warning("tool schemas cannot be enforced; calls are not constrained")
            return None

    def _new_sequence(
        self,
        request: GenerationRequest,
        constraint: llguidance.LLMatcher | None,
        index: int,
        seed: int,
    ) -> Sequence:
        params = request.params
        detok = Detokenizer(self.vocab.pieces_keeping(params.keep_special), params.stop)
        return Sequence(
            request.request_id, index, request.prompt_token_ids, params, constraint, seed, detok
        )

    def _sampler(self, seq: Sequence) -> Sampler:
        if seq.sampler is None:
            v = self.vocab
            guide = Guide(seq.constraint, v.n_vocab) if seq.constraint is not None else None
            seq.sampler = Sampler(seq.params, guide, seq.seed, v.n_vocab, v.eog_ids)
        return seq.sampler

    def add(self, first_choice: Sequence) -> None:
        self.scheduler.add(first_choice)

    def abort(self, request_id: str) -> None:
        self.scheduler.abort(request_id)

    @property
    def speculation(self) -> SpecCounts:
        d = self.drafter
        return SpecCounts(d.drafts, d.drafted, d.accepted) if d is not None else SpecCounts()

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    # -- the step -------------------------------------------------------------------------

    def step(self) -> list[StepOutput]:
        """Schedule, execute, and make output.

        A failure that belongs to requests (a refused decode, an error while sampling one
        choice) aborts those requests and lands in ``failures``; the step goes on for the rest.
        """
        started = time.perf_counter()
        plan = self.scheduler.schedule()
        if plan.empty:
            return []
        decode_only = not any(chunk.seq.prefilling for chunk in plan.chunks)
        try:
            kernel_s = self._execute(plan)
        except EngineError as exc:
            for request_id in dict.fromkeys(chunk.seq.request_id for chunk in plan.chunks):
                self._fail(request_id, exc)
            return []
        outputs = self._update(plan)
        if decode_only:
            t = self.decode_timing
            self.decode_timing = StepTiming(
                t.steps + 1, t.step_s + time.perf_counter() - started, t.kernel_s + kernel_s
            )
        return outputs

    def _fail(self, request_id: str, exc: BaseException) -> None:
        error = exc if isinstance(exc, EngineError) else EngineError(f"{type(exc).__name__}: {exc}")
        self.failures.append((request_id, error))
        self.abort(request_id)

    def _execute(self, plan: SchedulerOutput) -> float:
        """Fill the batch and decode it; return the seconds spent in ``llama_decode``."""
        batch = self.runner.batch
        batch.clear()
        for chunk in plan.chunks:
            chunk.batch_index = batch.add(
                chunk.tokens, chunk.start_pos, chunk.seq.slot, chunk.sample, chunk.all_logits
            )
        started = time.perf_counter()
        self.runner.decode()
        return time.perf_counter() - started

    def _update(self, plan: SchedulerOutput) -> list[StepOutput]:
        logits = self.runner.logits(self.runner.batch.n_outputs)
        outputs: list[StepOutput] = []
        failed: set[str] = set()
        row_index = 0
        for chunk in plan.chunks:
            seq = chunk.seq
            prefilling = seq.prefilling
            n_rows = len(chunk.tokens) if chunk.all_logits else int(chunk.sample)
            rows = logits[row_index : row_index + n_rows]
            row_index += n_rows
            if prefilling:
                self.prompt_tokens_computed += len(chunk.tokens)
                if chunk.all_logits:
                    self._score_prompt(chunk, rows)
                seq.num_computed += len(chunk.tokens)
            if not n_rows or seq.request_id in failed:
                continue  # a prompt chunk before the last, or its request failed this step
            try:
                if prefilling:
                    advancing = self._samplers_of(chunk)
                    for choice in advancing:
                        self._sample(choice, rows[-1], chunk.batch_index)
                else:
                    advancing = [seq]
                    self._advance(seq, chunk, rows, outputs)
                for choice in advancing:
                    outputs.append(self._output(choice))
                    if choice.finish_reason is not None:
                        self.scheduler.finish(choice)
            except Exception as exc:  # one request's bug must not stop everyone's stream
                log.exception("request %s failed while sampling", seq.request_id)
                failed.add(seq.request_id)
                self._fail(seq.request_id, exc)
        if failed:
            outputs = [out for out in outputs if out.request_id not in failed]
        return outputs

    def _advance(
        self, seq: Sequence, chunk: Chunk, rows: np.ndarray, outputs: list[StepOutput]
    ) -> None:
        """A decode chunk's rows: each gives the distribution of the position after its
        token. Where that position already holds a token the grammar forced, the token is
        emitted with its logprob; past the end, the next token is sampled. Each token goes
        out in an output of its own (streamed one by one). A token after the first is
        verified before its row is used: a forced one always holds, a drafted one only if
        it is the token that now stands at its position; at the first that is not, the
        rest of the chunk is taken back from the KV cache.  rows: [len(tokens), n_vocab]"""
        start, tokens = chunk.start_pos, seq.tokens
        first_index = chunk.batch_index - len(rows) + 1
        rejected = False  # the sampler chose otherwise where a token was drafted
        for offset, row in enumerate(rows):
            if offset:
                if chunk.tokens[offset] != tokens[start + offset]:
                    rejected = True
                    break
                if seq.new_tokens:
                    outputs.append(self._output(seq))
            position = start + offset + 1
            if position < len(tokens):
                seq.pending -= 1
                self._emit(seq, tokens[position], row)
            else:
                self._sample(seq, row, first_index + offset)
            if seq.finish_reason is not None:
                break
        # The chunk's KV is right as far as its tokens are the sequence's (a forced token
        # not emitted because the sequence ended still is; a drafted one never emitted is not).
        valid = 1
        while (
            valid < len(chunk.tokens)
            and start + valid < len(tokens)
            and chunk.tokens[valid] == tokens[start + valid]
        ):
            valid += 1
        seq.num_computed = start + valid
        if not chunk.drafted:
            return
        if valid < len(chunk.tokens) and not self.runner.seq_rm(seq.slot, start + valid):
            raise EngineError("llama.cpp refused to take drafted tokens back from the KV cache")
        if self.drafter is not None:
            self.drafter.observe(seq.draft, chunk.drafted, valid - 1, rejected)

    def _score_prompt(self, chunk: Chunk, rows: np.ndarray) -> None:
        """Each row is the distribution of the next position: the logprob of the prompt
        token that stands there.  rows: [len(chunk.tokens), n_vocab]"""
        seq = chunk.seq
        scores = seq.prompt_logprobs
        if scores is None:
            return
        for offset, row in enumerate(rows):
            position = chunk.start_pos + offset + 1
            if position < seq.num_prompt:
                token = seq.tokens[position]
                scores.append(float(row[token]) - logsumexp(row, self._scratch))

    def _samplers_of(self, chunk: Chunk) -> list[Sequence]:
        """The sequences that sample from this chunk's logits: itself, plus new forks."""
        seq = chunk.seq
        if seq.num_generated == 0 and seq.forks:
            return [seq, *self.scheduler.start_forks(seq)]
        return [seq]

    def _sample(self, seq: Sequence, row: np.ndarray, batch_index: int) -> None:
        sampler = self._sampler(seq)
        if sampler.complete:  # the grammar ended on a forced token: nothing more may follow
            seq.finish(FinishReason.STOP)
            return
        token = sampler.sample(self.runner.ctx, batch_index, row)
        if token is None:  # the grammar is complete and allows no further token
            seq.finish(FinishReason.STOP)
            return
        seq.tokens.append(token)
        if token in self.vocab.eog_ids and not seq.params.ignore_eos:
            seq.finish(FinishReason.STOP)
            return
        self._emit(seq, token, row)
        if seq.finish_reason is not None:
            return
        room = min(seq.params.max_tokens - seq.num_generated, self.ctx_per_seq - len(seq.tokens))
        forced = sampler.forced[:room]
        if forced:  # decoded next step without sampling; their rows give their logprobs
            seq.tokens.extend(forced)
            seq.pending = len(forced)
        elif sampler.complete:
            seq.finish(FinishReason.STOP)

    def _emit(self, seq: Sequence, token: int, row: np.ndarray) -> None:
        """Hand out one generated token (``row``: the distribution it was chosen from)."""
        params = seq.params
        lse = logsumexp(row, self._scratch)
        seq.new_tokens.append(self._token_info(token, row, lse, params.logprobs))
        seq.new_text += seq.detokenizer.add_token(token)
        if seq.detokenizer.stopped:
            seq.finish(FinishReason.STOP)
        elif (
            seq.num_generated >= params.max_tokens
            or seq.num_prompt + seq.num_generated >= self.ctx_per_seq
        ):
            seq.finish(FinishReason.LENGTH)

    def _token_info(self, token: int, row: np.ndarray, lse: float, k: int | None) -> TokenInfo:
        alternatives = None
        if k:
            alternatives = tuple(
                TopLogprob(t, self.vocab.text(t), lp) for t, lp in top_logprobs(row, lse, k)
            )
        return TokenInfo(
            id=token,
            text=self.vocab.text(token),
            logprob=float(row[token]) - lse,
            special=self.vocab.special(token),
            top_logprobs=alternatives,
        )

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
            # Complete once the prompt is in: handed over with the first output, then gone.
            prompt_logprobs=seq.prompt_logprobs,
        )
        seq.prompt_logprobs = None
        seq.new_tokens = []
        seq.new_text = ""
        return out

    def close(self) -> None:
        for seq in [*self.scheduler.running, *self.scheduler.waiting]:
            self.abort(seq.request_id)
        # llguidance's tokenizer is read from the vocabulary in the background: the model
        # must outlive that read (a model unloaded right after loading freed it under it).
        self.constraints.vocab.wait_built()
        self.runner.close()


__all__ = ["EngineCore", "SequenceStatus"]
