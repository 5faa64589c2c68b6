"""``EngineCore``: one step of continuous batching — schedule, execute, make output."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace

import numpy as np

from tether.engine.errors import (
    ContextLengthExceededError,
    EngineError,
    InvalidRequestError,
    StructuredOutputError,
)
from tether.engine.request import (
    FinishReason,
    GenerationRequest,
    StepOutput,
    StepTiming,
    TokenInfo,
    TopLogprob,
)
from tether.engine.structured import StructuredOutput
from tether.engines.llamacpp import gbnf
from tether.engines.llamacpp.detokenizer import Detokenizer
from tether.engines.llamacpp.runner import ModelRunner
from tether.engines.llamacpp.sampler import Sampler, check_grammar, logsumexp, top_logprobs
from tether.engines.llamacpp.scheduler import Chunk, Scheduler, SchedulerOutput
from tether.engines.llamacpp.sequence import Sequence, SequenceStatus
from tether.engines.llamacpp.slots import SlotManager

log = logging.getLogger(__name__)

_GRAMMAR_CACHE = 64  # compiled grammars remembered (each a few KB of text)


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
    ) -> None:
        self.runner = runner
        self.vocab = runner.vocab
        self.ctx_per_seq = ctx_per_seq
        n_slots = runner.config.n_seq_max
        self.scheduler = Scheduler(
            SlotManager(runner, n_slots), batch_tokens, max_queue, prefill_chunk
        )
        self.prompt_tokens_computed = 0  # prompt tokens actually prefilled (not reused)
        self._scratch = np.empty(runner.n_vocab, dtype=np.float32)
        self._grammars: dict[str, str] = {}  # spec key → GBNF, insertion-ordered: oldest first
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
        """Compile and check the grammar, then build a validated request's choices (safe off
        the engine thread). Allocates nothing in C: each choice's sampler is built when it
        first samples.
        """
        params = request.params
        grammar = self._grammar(params.structured) if params.structured is not None else None
        if grammar is None and params.structured is not None:
            params = replace(params, structured=None)  # lazy calls it could not express
            request = replace(request, params=params)
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        seqs = [
            self._new_sequence(request, grammar, i, (seed + i) & 0xFFFFFFFF)
            for i in range(params.n)
        ]
        seqs[0].forks = seqs[1:]
        return seqs

    def _grammar(self, spec: StructuredOutput) -> str | None:
        """The spec's GBNF, parsed once by llama.cpp (and freed) so that a grammar it rejects
        is a 400 before anything is queued. Compiled grammars are remembered: clients send
        the same few again and again."""
        key = spec.key()
        known = self._grammars.get(key)
        if known is not None:
            return known
        try:
            text = gbnf.grammar(spec)
            check_grammar(text, self.vocab.ptr)
        except StructuredOutputError:
            if spec.lazy_calls is None:
                raise
            # Constraining calls the model opens on its own is a bonus of tool_choice auto:
            # tools whose schemas a grammar cannot express still work, unconstrained.
            log.warning("tool schemas not expressible as a grammar; calls are not constrained")
            return None
        if len(self._grammars) >= _GRAMMAR_CACHE:
            self._grammars.pop(next(iter(self._grammars)))
        self._grammars[key] = text
        return text

    def _new_sequence(
        self, request: GenerationRequest, grammar: str | None, index: int, seed: int
    ) -> Sequence:
        params = request.params
        detok = Detokenizer(self.vocab.pieces_keeping(params.keep_special), params.stop)
        return Sequence(
            request.request_id, index, request.prompt_token_ids, params, grammar, seed, detok
        )

    def _sampler(self, seq: Sequence) -> Sampler:
        if seq.sampler is None:
            v = self.vocab
            seq.sampler = Sampler(seq.params, seq.grammar, seq.seed, v.ptr, v.n_vocab, v.eog_ids)
        return seq.sampler

    def add(self, first_choice: Sequence) -> None:
        self.scheduler.add(first_choice)

    def abort(self, request_id: str) -> None:
        self.scheduler.abort(request_id)

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
            if chunk.seq.prefilling:
                self.prompt_tokens_computed += len(chunk.tokens)
            chunk.seq.num_computed += len(chunk.tokens)
            if chunk.all_logits:
                rows = logits[row_index : row_index + len(chunk.tokens)]
                row_index += len(chunk.tokens)
                self._score_prompt(chunk, rows)
                row = rows[-1]
            elif chunk.sample:
                row = logits[row_index]
                row_index += 1
            if not chunk.sample:
                continue
            if chunk.seq.request_id in failed:
                continue  # its request failed earlier in this step
            try:
                for seq in self._samplers_of(chunk):
                    self._sample(seq, chunk, row)
                    outputs.append(self._output(seq))
                    if seq.finish_reason is not None:
                        self.scheduler.finish(seq)
            except Exception as exc:  # one request's bug must not stop everyone's stream
                log.exception("request %s failed while sampling", chunk.seq.request_id)
                failed.add(chunk.seq.request_id)
                self._fail(chunk.seq.request_id, exc)
        if failed:
            outputs = [out for out in outputs if out.request_id not in failed]
        return outputs

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

    def _sample(self, seq: Sequence, chunk: Chunk, row: np.ndarray) -> None:
        token = self._sampler(seq).sample(self.runner.ctx, chunk.batch_index, row)
        if token is None:  # the grammar is complete and allows no further token
            seq.finish(FinishReason.STOP)
            return
        seq.tokens.append(token)
        params = seq.params
        if token in self.vocab.eog_ids and not params.ignore_eos:
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
        self.runner.close()


__all__ = ["EngineCore", "SequenceStatus"]
