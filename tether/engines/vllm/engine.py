"""``VllmEngine``: the ``Engine`` seam over vLLM's ``AsyncLLM``.

vLLM schedules, samples, detokenizes (with stop strings and UTF-8 hold-back), caches
prefixes and constrains output; the engine loads the model, checks and translates each
request, and hands it to a ``VllmStream`` (``stream``), which runs it and maps its outputs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from tether.engine.config import EngineConfig
from tether.engine.errors import (
    ContextLengthExceededError,
    EngineDeadError,
    EngineError,
    InvalidRequestError,
    QueueFullError,
    StructuredOutputError,
)
from tether.engine.guidance import GuidanceOptions, Markup, plain_markup, special_markup
from tether.engine.request import EngineStats, GenerationRequest
from tether.engine.sampling_params import SamplingDefaults
from tether.engines.vllm.config import VllmOptions
from tether.engines.vllm.params import new_seed, sampling_kwargs, structured_outputs
from tether.engines.vllm.stream import VllmStream

log = logging.getLogger(__name__)

# Fields of vLLM's per-model sampling defaults (its ``generation_config.json`` reading) that
# Tether's defaults know.
_DEFAULT_FIELDS = {
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
}


# glibc's allocator settings for the processes vLLM spawns (unless the user set them). Tether
# asks for every sampled token's logprob (Together's ``token.logprob``), and vLLM's sampler
# then makes a float32 log-softmax of the step's logits rows: 16 MB a step at 16 streams of
# a 262,144-token vocabulary, which glibc serves from fresh pages and hands back each time.
# Measured on a 2-core AMD EPYC, 32 requests of 64 tokens at 16 streams (``/proc/PID/stat``):
# 0.4-1.4 million page faults in vLLM's worker, against 16,000 without logprobs; kept in the
# heap, 15,000-27,000, and 6% less worker CPU. vLLM's CPU build spawns its processes, so
# they read these at start.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 32)}


class VllmEngine:
    """One ``AsyncLLM`` serving ``config.model`` (a Hugging Face folder or hub id)."""

    def __init__(self, config: EngineConfig, options: VllmOptions) -> None:
        if config.model is None:
            raise ValueError("the vLLM engine needs --model (a Hugging Face folder or hub id)")
        self.config = config
        self.options = options
        self._llm: Any = None
        self._tokenizer: Any = None
        self._special_texts: frozenset[str] = frozenset()
        self._special: frozenset[int] = frozenset()
        self._markup: Markup = plain_markup
        self._guidance = GuidanceOptions(lenient=config.lenient_schemas)
        self._vocab_size = 0
        self._chat_template: str | None = None
        self._defaults = SamplingDefaults()
        self._streams: dict[str, VllmStream] = {}
        self._ended: EngineError | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model (vLLM starts its engine core in another process), then warm up:
        the first request after a start is several seconds slower."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        for name, value in MALLOC.items():  # read by the processes vLLM spawns
            os.environ.setdefault(name, value)
        args = AsyncEngineArgs(**self.engine_args())
        # Off the event loop: the server may be serving other models meanwhile.
        self._llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args)
        tokenizer = self._llm.get_tokenizer()
        self._tokenizer = tokenizer
        self._special = frozenset(getattr(tokenizer, "all_special_ids", ()))
        self._special_texts = frozenset(getattr(tokenizer, "all_special_tokens", ()))
        self._markup = special_markup(
            dict(
                zip(
                    getattr(tokenizer, "all_special_tokens", ()),
                    getattr(tokenizer, "all_special_ids", ()),
                    strict=False,
                )
            )
        )
        self._vocab_size = len(tokenizer)
        template = getattr(tokenizer, "chat_template", None)
        if isinstance(template, dict):
            template = template.get("default")
        self._chat_template = template if isinstance(template, str) else None
        self._defaults = self._model_defaults()
        await self._warm_up()

    def engine_args(self) -> dict[str, Any]:
        """``AsyncEngineArgs`` for this config: Tether's sizes, then the vLLM options, then
        the pass-through ``engine_args`` (which win)."""
        cfg, opts = self.config, self.options
        args: dict[str, Any] = {
            "model": cfg.model,
            "served_model_name": [cfg.model_id],
            "max_model_len": cfg.ctx_size,
            "max_num_seqs": cfg.max_seqs,
            "tensor_parallel_size": opts.tensor_parallel_size,
            "pipeline_parallel_size": opts.pipeline_parallel_size,
            "dtype": opts.dtype,
            "enforce_eager": opts.enforce_eager,
            "enable_prefix_caching": True,
            "disable_log_stats": True,
        }
        if opts.distributed_executor_backend is not None:
            args["distributed_executor_backend"] = opts.distributed_executor_backend
        if opts.gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = opts.gpu_memory_utilization
        if opts.speculative_config:
            args["speculative_config"] = dict(opts.speculative_config)
        args.update(opts.engine_args)
        # llguidance, as on the llama.cpp engine: Tether compiles every constraint into its
        # grammar (no free whitespace in JSON: a small model loops on it).
        structured = {
            "backend": "guidance",
            "disable_any_whitespace": True,
            **dict(args.get("structured_outputs_config") or {}),
        }
        args["structured_outputs_config"] = _structured_outputs_config(structured)
        return args

    def _model_defaults(self) -> SamplingDefaults:
        try:
            recommended = self._llm.model_config.get_diff_sampling_param()
        except Exception:  # an older vLLM without it: its neutral defaults
            return SamplingDefaults()
        known = {k: v for k, v in recommended.items() if k in _DEFAULT_FIELDS}
        try:
            return SamplingDefaults().with_values(known)
        except ValueError as exc:
            log.warning("ignoring the model's generation defaults %s: %s", known, exc)
            return SamplingDefaults()

    async def _warm_up(self) -> None:
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.inputs import TokensPrompt

        ids = self.tokenize("Hello")
        params = VllmSamplingParams(max_tokens=2, temperature=0)
        async for _ in self._llm.generate(TokensPrompt(prompt_token_ids=ids), params, "warmup"):
            pass

    async def stop(self) -> None:
        if self._llm is not None:
            llm, self._llm = self._llm, None
            await asyncio.to_thread(llm.shutdown)

    # -- the Engine protocol -----------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def context_length(self) -> int:
        return self.config.ctx_size

    @property
    def ready(self) -> bool:
        return self._llm is not None and self._ended is None and not self._llm.errored

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return list(self._require_tokenizer().encode(text, add_special_tokens=add_special))

    def token_text(self, token_id: int) -> str:
        return str(self._require_tokenizer().decode([token_id]))

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise EngineDeadError("the vLLM engine is not loaded")
        return self._tokenizer

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        return self._defaults

    def generate(self, request: GenerationRequest, lora: Any = None) -> VllmStream:
        """``lora``: vLLM's ``LoRARequest`` of an adapter served on this engine (``lora``)."""
        if self._ended is not None:
            raise self._ended
        if self._llm is None:
            raise EngineDeadError("the vLLM engine is not running")
        params = request.params
        prompt = request.prompt_token_ids
        if not prompt:
            raise InvalidRequestError("the prompt is empty", "prompt")
        if len(prompt) + params.max_tokens > self.config.ctx_size:
            raise ContextLengthExceededError(len(prompt), params.max_tokens, self.config.ctx_size)
        if params.n > self.config.max_seqs:
            raise InvalidRequestError(
                f"n: at most {self.config.max_seqs} choices (--max-seqs)", "n"
            )
        if len(self._streams) >= self.config.max_seqs + self.config.max_queue:
            raise QueueFullError("too many requests are waiting; retry later")
        seed = params.seed if params.seed is not None else new_seed()
        stream = VllmStream(self, request, self._vllm_params(request, seed), seed, lora)
        self._streams[request.request_id] = stream
        return stream

    def _vllm_params(self, request: GenerationRequest, seed: int) -> Any:
        """vLLM's ``SamplingParams``, built now: what vLLM refuses is a 400 before any work."""
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        params = request.params
        kwargs = dict(sampling_kwargs(params, seed, self._vocab_size))
        if self._special_texts.intersection(params.keep_special):
            # vLLM keeps every special token's text or none: a format whose markers are
            # special tokens (gpt-oss, Kimi, DeepSeek) needs them; its parser consumes them.
            kwargs["skip_special_tokens"] = False
        if params.structured is not None:
            try:
                constraint = structured_outputs(params.structured, self._markup, self._guidance)
            except StructuredOutputError:
                if params.structured.lazy_calls is None:
                    raise
                # As on llama.cpp: tools whose schemas cannot be enforced still work, their
                # calls unconstrained (constraining them is a bonus of tool_choice auto).
                log.warning("tool schemas cannot be enforced; calls are not constrained")
            else:
                kwargs["structured_outputs"] = StructuredOutputsParams(**constraint)
        try:
            return VllmSamplingParams(output_kind=RequestOutputKind.DELTA, **kwargs)
        except ValueError as exc:  # vLLM's VLLMValidationError is a ValueError
            raise InvalidRequestError(f"vLLM refused the request: {exc}") from exc

    def stats(self) -> EngineStats:
        running = sum(1 for stream in self._streams.values() if stream.started)
        return EngineStats(running=running, waiting=len(self._streams) - running)

    def end_all(self, error: EngineError) -> None:
        self._ended = error
        for stream in list(self._streams.values()):
            stream.fail(error)
        if self._streams and self._llm is not None:
            task = asyncio.ensure_future(self._llm.abort(list(self._streams)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def abort(self, request_id: str) -> None:
        if request_id in self._streams and self._llm is not None:
            await self._llm.abort(request_id)

    # -- for streams (``StreamOwner``) -------------------------------------------------------

    @property
    def llm(self) -> Any:
        return self._llm

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special

    def forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)


def _structured_outputs_config(fields: dict[str, Any]) -> Any:
    from vllm.config import StructuredOutputsConfig

    return StructuredOutputsConfig(**fields)
