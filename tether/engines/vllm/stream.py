"""``VllmStream``: one request's vLLM outputs as Tether's ``StepOutput``s.

Each request is one ``AsyncLLM.generate`` with ``RequestOutputKind.DELTA``; every output it
yields is mapped onto ``StepOutput``s token by token: ids, text, logprobs and alternatives
from vLLM's ``Logprob``s, finish reasons, prefix-cache hits from ``num_cached_tokens``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from tether.engine.errors import EngineDeadError, EngineError
from tether.engine.request import (
    FinishReason,
    GenerationRequest,
    StepOutput,
    TokenInfo,
    TopLogprob,
)

log = logging.getLogger(__name__)


class StreamOwner(Protocol):
    """What a stream asks of the engine that made it (``VllmEngine``, which imports this
    module, so this one names the engine only by what it needs)."""

    @property
    def llm(self) -> Any:
        """vLLM's ``AsyncLLM``, or ``None`` once the engine has stopped."""

    @property
    def special_ids(self) -> frozenset[int]: ...

    def token_text(self, token_id: int) -> str: ...

    async def abort(self, request_id: str) -> None: ...

    def forget(self, request_id: str) -> None:
        """The stream has ended: it no longer counts as running or waiting."""


class VllmStream:
    """One request's outputs. Closing it before the end aborts the request in vLLM."""

    def __init__(
        self,
        engine: StreamOwner,
        request: GenerationRequest,
        params: Any,
        seed: int,
        lora: Any = None,
    ) -> None:
        self._engine = engine
        self._lora = lora  # vLLM's LoRARequest, for a LoRA adapter's request
        self._request = request
        self._params = params
        # Greedy with n > 1: vLLM computes one choice, which every index receives.
        self._copies = request.params.n if params.n == 1 else 1
        self._seed = seed
        self._gen: AsyncGenerator[Any, None] | None = None
        self._ready: deque[StepOutput] = deque()
        self._unfinished = request.params.n
        self._counts = [0] * request.params.n
        self._error: EngineError | None = None
        self._closed = False
        self._prompt_logprobs_sent = False
        self.started = False

    @property
    def finished(self) -> bool:
        return self._closed or self._unfinished == 0

    def fail(self, error: EngineError) -> None:
        self._error = error

    def __aiter__(self) -> VllmStream:
        return self

    async def __anext__(self) -> StepOutput:
        while not self._ready:
            if self._error is not None:
                self._finish()
                raise self._error
            if self._unfinished == 0 or self._closed:
                self._finish()
                raise StopAsyncIteration
            await self._pull()
        return self._ready.popleft()

    async def _pull(self) -> None:
        if self._gen is None:
            self._gen = self._start()
        try:
            output = await self._gen.__anext__()
        except StopAsyncIteration:
            self._unfinished = 0
            return
        except EngineError:
            raise
        except Exception as exc:  # vLLM failed this request, or its engine died
            log.error("vLLM failed on request %s: %r", self._request.request_id, exc)
            if _engine_dead(self._engine.llm, exc):
                self._error = EngineDeadError(f"the vLLM engine failed: {exc}")
            else:  # one request failed; the engine serves the others on
                self._error = EngineError(f"vLLM failed on this request: {exc}")
            return
        self._convert(output)

    def _start(self) -> AsyncGenerator[Any, None]:
        from vllm.inputs import TokensPrompt

        prompt = TokensPrompt(prompt_token_ids=self._request.prompt_token_ids)
        llm = self._engine.llm
        if llm is None:
            raise EngineDeadError("the vLLM engine is not running")
        self.started = True
        gen: AsyncGenerator[Any, None] = llm.generate(
            prompt, self._params, self._request.request_id, lora_request=self._lora
        )
        return gen

    def _convert(self, output: Any) -> None:
        prompt_tokens = len(self._request.prompt_token_ids)
        cached = int(getattr(output, "num_cached_tokens", 0) or 0)
        prompt_logprobs = None
        if self._request.params.prompt_logprobs and not self._prompt_logprobs_sent:
            prompt_logprobs = self._prompt_logprobs(output)
            self._prompt_logprobs_sent = True
        for completion in output.outputs:
            tokens = self._tokens(completion)
            finish = _finish_reason(completion.finish_reason)
            if finish is None and not tokens and not completion.text:
                continue
            if completion.finish_reason == "abort" and self._error is None:
                # Aborted by us (the consumer left) or by vLLM: nothing more will come.
                self._error = EngineDeadError("the request was aborted")
                return
            first = completion.index * self._copies
            for index in range(first, first + self._copies):
                self._counts[index] += len(tokens)
                if finish is not None:
                    self._unfinished -= 1
                self._ready.append(
                    StepOutput(
                        request_id=self._request.request_id,
                        index=index,
                        tokens=tokens,
                        text=completion.text,
                        finish_reason=finish,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=self._counts[index],
                        cached_tokens=cached,
                        seed=self._seed,
                        prompt_logprobs=prompt_logprobs,
                    )
                )
                prompt_logprobs = None

    def _tokens(self, completion: Any) -> list[TokenInfo]:
        engine = self._engine
        want = self._request.params.logprobs
        ids = list(completion.token_ids)
        per_token = completion.logprobs or [None] * len(ids)
        tokens = []
        for token_id, entries in zip(ids, per_token, strict=False):
            chosen = entries.get(token_id) if entries else None
            text = chosen.decoded_token if chosen is not None and chosen.decoded_token else None
            tokens.append(
                TokenInfo(
                    id=token_id,
                    text=text if text is not None else engine.token_text(token_id),
                    logprob=float(chosen.logprob) if chosen is not None else 0.0,
                    special=token_id in engine.special_ids,
                    top_logprobs=_alternatives(entries, want) if want is not None else None,
                )
            )
        return tokens

    def _prompt_logprobs(self, output: Any) -> list[float | None] | None:
        rows = getattr(output, "prompt_logprobs", None)
        if rows is None:
            return None
        ids = self._request.prompt_token_ids
        scores: list[float | None] = []
        for position, row in enumerate(rows):
            entry = row.get(ids[position]) if row else None
            scores.append(None if entry is None else float(entry.logprob))
        return scores

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        unfinished = self._unfinished > 0
        if self._gen is not None:
            await self._gen.aclose()  # vLLM aborts a request whose generator is closed
        if unfinished and self._gen is not None:
            await self._engine.abort(self._request.request_id)
        self._finish()

    def _finish(self) -> None:
        self._engine.forget(self._request.request_id)

    async def __aenter__(self) -> VllmStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _finish_reason(reason: str | None) -> FinishReason | None:
    if reason is None or reason == "abort":
        return None
    return FinishReason.LENGTH if reason == "length" else FinishReason.STOP


def _alternatives(entries: Any, k: int) -> tuple[TopLogprob, ...]:
    """The ``k`` most likely tokens at a position, from vLLM's ``{id: Logprob}``."""
    if not entries or k <= 0:
        return ()
    ranked = sorted(entries.items(), key=lambda item: item[1].rank or 0)
    return tuple(
        TopLogprob(token_id, entry.decoded_token or "", float(entry.logprob))
        for token_id, entry in ranked
        if entry.rank is not None and entry.rank <= k
    )[:k]


def _engine_dead(llm: Any, exc: BaseException) -> bool:
    """Whether vLLM's engine is gone (its ``EngineDeadError``, or the client says it
    errored), rather than one request failing inside it."""
    if type(exc).__name__ == "EngineDeadError":
        return True
    return llm is None or bool(getattr(llm, "errored", False))
