"""The ``Engine`` protocol: the one seam between the HTTP API and whatever generates tokens.

Each package under ``tether.engines`` implements it (llama.cpp: ``tether.engines.llamacpp``;
vLLM: ``tether.engines.vllm``); unit tests plug in a scripted fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from tether.engine.errors import EngineError
from tether.engine.request import EngineStats, GenerationRequest, StepOutput
from tether.engine.sampling_params import SamplingDefaults


class RequestStream(Protocol):
    """The outputs of one request: an async iterator and an async context manager."""

    def __aiter__(self) -> AsyncIterator[StepOutput]: ...

    async def __anext__(self) -> StepOutput: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> RequestStream: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Engine(Protocol):
    """An engine that serves one model to many concurrent requests."""

    @property
    def model_id(self) -> str:
        """The id clients put in ``model`` (e.g. ``google/gemma-3-270m``)."""

    @property
    def context_length(self) -> int:
        """The most tokens (prompt + completion) one sequence can hold."""

    @property
    def ready(self) -> bool:
        """True once the model is loaded and the decode loop runs."""

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS. Special-token text is parsed."""

    def token_text(self, token_id: int) -> str:
        """The text piece of one token (lossy for partial UTF-8; for logprob displays)."""

    @property
    def chat_template(self) -> str | None:
        """The model's own chat template (Jinja source), or ``None`` when it has none. The
        API renders it (``tether.chat.template``); engines never see chat messages."""

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        """What the model is sampled with when a request leaves a field out: the model's own
        recommendation where it has one, else the engine's defaults (known once loaded)."""

    def generate(self, request: GenerationRequest) -> RequestStream:
        """Validate and enqueue ``request``; return the stream of its outputs.

        Not a coroutine: it raises ``InvalidRequestError``, ``ContextLengthExceededError``
        or ``QueueFullError`` at call time, before any work, so the API can answer with an
        error status before it starts streaming. The stream yields ``StepOutput`` for every
        choice until each has finished. Closing it early (``aclose()``, ``async with``, or
        cancelling the consumer) aborts the request and frees its KV within one step.
        """

    def stats(self) -> EngineStats:
        """Running and waiting counts right now (cheap; called by ``/metrics``)."""

    def end_all(self, error: EngineError) -> None:
        """End every request now: each open stream raises ``error`` (after what it already
        yielded) and its work is freed; later ``generate`` calls raise ``error`` too. Used by
        the graceful shutdown once the drain timeout has passed."""

    async def abort(self, request_id: str) -> None:
        """Stop a request early and free its resources; unknown ids are ignored."""
