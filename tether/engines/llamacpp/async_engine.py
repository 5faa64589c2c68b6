"""``AsyncEngine``: the ``Engine`` protocol over ``EngineCore``, stepped on the decode thread
(``decode_thread.DecodeThread``: its own, or one shared by every model of the server).

The event loop never waits on llama.cpp: requests and aborts go to the engine thread
through a locked inbox, and each step's outputs come back in one
``loop.call_soon_threadsafe`` call that fans them out to per-request queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from tether.engine.config import EngineConfig
from tether.engine.errors import EngineDeadError, EngineError, EngineShutdownError
from tether.engine.guidance import GuidanceOptions
from tether.engine.request import EngineStats, GenerationRequest, StepOutput
from tether.engine.sampling_params import SamplingDefaults
from tether.engines.llamacpp.core import EngineCore
from tether.engines.llamacpp.decode_thread import DecodeThread
from tether.engines.llamacpp.gguf import LLAMA_CPP_DEFAULTS, resolve_model_path, sampling_defaults
from tether.engines.llamacpp.heap import HeapTrimmer
from tether.engines.llamacpp.runner import ModelRunner, RunnerConfig
from tether.engines.llamacpp.sampler import grammars_ended, live_samplers
from tether.engines.llamacpp.sequence import Sequence

log = logging.getLogger(__name__)


class RequestStream:
    """The outputs of one request. Closing it before the end aborts the request."""

    def __init__(self, engine: AsyncEngine, request_id: str, n_choices: int) -> None:
        self._engine = engine
        self.request_id = request_id
        self.loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[StepOutput | BaseException] = asyncio.Queue()
        self._unfinished = n_choices
        self._closed = False

    def push(self, item: StepOutput | BaseException) -> None:
        self._queue.put_nowait(item)

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> StepOutput:
        if self._unfinished == 0 or self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        if item.finished:
            self._unfinished -= 1
            if self._unfinished == 0:
                self._engine._forget(self.request_id)
        return item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._unfinished:
                self._engine._abort_now(self.request_id)

    async def __aenter__(self) -> RequestStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncEngine:
    """Serves one GGUF model with continuous batching; implements ``tether.engine.base.Engine``."""

    def __init__(self, config: EngineConfig, decoder: DecodeThread | None = None) -> None:
        self.config = config
        # Several engines share one decode thread (only one thread may call llama_decode).
        self._decoder = decoder or DecodeThread()
        self._model_id = config.model_id
        self._core: EngineCore | None = None
        self._chat_template: str | None = None
        self._sampling_defaults = LLAMA_CPP_DEFAULTS
        self._streams: dict[str, RequestStream] = {}
        self._inbox: deque[Sequence | str] = deque()
        self._wake = self._decoder.wake
        self._started = False
        self._dead: BaseException | None = None
        self._closing: EngineError | None = None
        # Gives back the C heap that grammar-constrained choices freed (issue 22).
        self.heap_trimmer = HeapTrimmer(grammars_ended=grammars_ended())

    # -- lifecycle ------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model (blocking, ~1 s for the default model)."""
        cfg = self.config
        runner = ModelRunner(
            RunnerConfig(
                model_path=resolve_model_path(cfg.model),
                ctx_per_seq=cfg.ctx_size,
                n_seq_max=cfg.max_seqs,
                n_batch=cfg.batch_tokens,
                n_threads=cfg.n_threads,
                kv_unified=cfg.kv_unified,
                lora_path=cfg.lora_path,
                lora_scale=cfg.lora_scale,
            )
        )
        self._chat_template = runner.chat_template()
        self._sampling_defaults = sampling_defaults(runner.meta)
        self._core = EngineCore(
            runner,
            cfg.ctx_size,
            cfg.batch_tokens,
            cfg.max_queue,
            cfg.prefill_chunk,
            GuidanceOptions(lenient=cfg.lenient_schemas),
            cfg.max_draft,
        )

    async def start(self) -> None:
        """Load the model off the event loop, then start the engine thread."""
        if self._core is None:
            await asyncio.to_thread(self.load)
        self.start_thread()

    def start_thread(self) -> None:
        """Have the decode thread step this engine."""
        self._require_core()
        self._started = True
        self._decoder.attach(self)

    async def stop(self) -> None:
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        """Leave the decode thread and free the model (blocking). Requests still open end
        with ``EngineShutdownError``."""
        self._decoder.detach(self)
        self._started = False
        if self._streams:
            self._fail_all(EngineShutdownError("the model was unloaded"))
        if self._core is not None:
            self._core.close()
            self._core = None

    # -- the Engine protocol ---------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def context_length(self) -> int:
        return self.config.ctx_size

    @property
    def ready(self) -> bool:
        return self._core is not None and self._started and self._dead is None

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._require_core().vocab.tokenize(text, add_special)

    def token_text(self, token_id: int) -> str:
        return self._require_core().vocab.text(token_id)

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        return self._sampling_defaults

    def generate(self, request: GenerationRequest) -> RequestStream:
        """Check, in order of cost, then enqueue. Nothing is allocated in C here: a refused
        request leaves nothing behind (samplers are built when a choice first samples)."""
        core = self._require_core()
        if self._closing is not None:
            raise self._closing
        if request.request_id in self._streams:
            raise EngineError(f"request id {request.request_id!r} is already running")
        core.validate(request)
        self._check_room(core)
        seqs = core.new_sequences(request)
        stream = RequestStream(self, request.request_id, len(seqs))
        with self._wake:
            # Checked again under the lock so that concurrent callers can't overfill the queue.
            self._check_room(core)
            self._streams[request.request_id] = stream
            self._inbox.append(seqs[0])
            self._wake.notify_all()  # the decode thread, and any detach waiting
        return stream

    def _check_room(self, core: EngineCore) -> None:
        core.scheduler.check_room(self._queued())

    def _queued(self) -> int:
        """Requests in the inbox, not yet in the scheduler's queue."""
        with self._wake:  # an RLock: callers may hold it already
            return sum(1 for item in self._inbox if isinstance(item, Sequence))

    def end_all(self, error: EngineError) -> None:
        """End every request: each stream raises ``error`` and its work is aborted, and new
        requests are refused with it from now on (graceful shutdown, after the drain)."""
        self._closing = error
        for request_id in list(self._streams):
            stream = self._streams.get(request_id)
            if stream is not None:
                self._abort_now(request_id)
                stream.loop.call_soon_threadsafe(stream.push, error)

    async def abort(self, request_id: str) -> None:
        self._abort_now(request_id)

    def stats(self) -> EngineStats:
        core = self._core
        if core is None:
            return EngineStats(running=0, waiting=0, live_samplers=live_samplers())
        return EngineStats(
            running=len(core.scheduler.running),
            waiting=len(core.scheduler.waiting) + self._queued(),
            live_samplers=live_samplers(),
            decode_steps=core.decode_timing,
            speculation=core.speculation,
        )

    # -- internals ------------------------------------------------------------------------

    @property
    def core(self) -> EngineCore:
        """The engine core (tests and the benchmark inspect it; the API never does)."""
        return self._require_core()

    def _require_core(self) -> EngineCore:
        if self._dead is not None:
            raise EngineDeadError("the engine stopped after an internal error") from self._dead
        if self._core is None:
            raise EngineDeadError("the model is not loaded yet")
        return self._core

    def _abort_now(self, request_id: str) -> None:
        if self._streams.pop(request_id, None) is not None:
            with self._wake:
                self._inbox.append(request_id)
                self._wake.notify_all()  # the decode thread, and any detach waiting

    def _forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)

    # -- on the decode thread ---------------------------------------------------------------

    def wants_step(self) -> bool:
        core = self._core
        return core is not None and self._dead is None and bool(self._inbox or core.has_work)

    def step_once(self) -> bool:
        """Apply queued requests and aborts, then one step; False once the engine is dead."""
        core = self._core
        assert core is not None  # attached only once loaded
        try:
            with self._wake:
                inbox, self._inbox = self._inbox, deque()
            for item in inbox:
                if isinstance(item, str):
                    core.abort(item)
                else:
                    core.add(item)
            if not core.has_work:
                return True
            outputs = core.step()
            # Before the step's outputs go out: a client that has its answer finds the
            # heap its grammars used already given back.
            self.heap_trimmer.after_step(grammars_ended(), lambda: _grammar_running(core))
            if outputs:
                self._deliver(outputs)
            if core.failures:
                self._deliver_failures(core)
            return True
        except BaseException as exc:  # the loop must never die silently
            log.exception("engine loop crashed")
            self._dead = exc
            self._fail_all(EngineDeadError(f"the engine stopped: {exc}"))
            return False

    def _deliver(self, outputs: list[StepOutput]) -> None:
        """Hand a step's outputs to their event loops: one wake-up per loop per step."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[RequestStream, StepOutput]]] = {}
        for out in outputs:
            stream = self._streams.get(out.request_id)
            if stream is not None:
                by_loop.setdefault(stream.loop, []).append((stream, out))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_push_all, items)
            except RuntimeError:  # that loop is closed: its requests are gone
                for stream, _ in items:
                    self._abort_now(stream.request_id)

    def _deliver_failures(self, core: EngineCore) -> None:
        """Requests that failed inside a step end with their error; the engine goes on."""
        failures, core.failures = core.failures, []
        for request_id, error in failures:
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                stream.loop.call_soon_threadsafe(stream.push, error)

    def _fail_all(self, error: BaseException) -> None:
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            with contextlib.suppress(RuntimeError):  # a closed loop: its requests are gone
                stream.loop.call_soon_threadsafe(stream.push, error)


def _grammar_running(core: EngineCore) -> bool:
    return any(seq.constraint is not None for seq in core.scheduler.running)


def _push_all(items: list[tuple[RequestStream, StepOutput]]) -> None:
    for stream, out in items:
        stream.push(out)
