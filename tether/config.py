"""One flat configuration object per server process, validated at construction.

CLI flags (``tether serve --ctx-size 4096``) and environment variables (``TETHER_CTX_SIZE``)
map one-to-one onto the fields below; see ``tether/cli.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import platformdirs

from tether.chat.reasoning import REASONING_PARSERS
from tether.chat.template import ChatTemplate
from tether.chat.tool_parsers import PARSERS
from tether.engine.config import DEFAULT_MODEL_ID, EngineConfig
from tether.engine.sampling_params import SamplingDefaults
from tether.engines.vllm.config import VllmOptions

LOOPBACK = "127.0.0.1"
ENGINES = ("llamacpp", "vllm")
MAX_TTL_S = 366 * 24 * 3600.0  # a model's idle timeout: at most a year
__all__ = ["DEFAULT_MODEL_ID", "LOOPBACK", "ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a ``tether serve`` process needs to know.

    ``model_path=None`` means the embedded default model (Gemma 3 270M, Q4_K_M).
    ``ctx_size`` is the context of one sequence (prompt + completion). ``max_seqs`` is how
    many sequences decode at once (``n > 1`` choices count one each). ``batch_tokens`` is the
    per-step token budget shared by decoding and chunked prefill; ``prefill_chunk`` caps the
    prompt tokens of a step while other sequences decode. ``threads=0`` picks the
    number of logical CPUs (measured best on a quiet 2-core machine). ``drain_timeout`` is
    how long running requests may finish after SIGTERM. ``rate_limit_rpm`` and
    ``rate_limit_tpm`` are requests and tokens per minute per API key (0: no limit).
    ``chat_template`` is the path of a Jinja chat template to use instead of the model's.
    ``tool_call_parser`` and ``reasoning_parser`` name the format the model writes calls and
    reasoning in (vLLM's names), instead of the one detected from the template.
    ``lenient_schemas`` accepts JSON Schema keywords that cannot be enforced during
    generation (``uniqueItems``, ``not`` …) as advisory instead of refusing them with a 400.
    ``speculative`` / ``spec_max_draft``: speculative decoding on the llama.cpp engine
    (``EngineConfig``); ``speculative_config`` is vLLM's own (``--speculative-config``).
    ``sampling_defaults`` override the model's defaults for fields a request leaves out.
    ``state_db`` is the SQLite file of stored Responses API responses (``None``: under the
    user's data directory; ``:memory:``: gone with the process); ``no_store`` stores nothing.
    """

    host: str = LOOPBACK
    port: int = 8000
    model_path: str | None = None
    model_id: str = DEFAULT_MODEL_ID
    api_keys: tuple[str, ...] = ()
    ctx_size: int = 4096
    max_seqs: int = 64
    max_queue: int = 256
    batch_tokens: int = 512
    prefill_chunk: int = 256
    threads: int = 0
    kv_unified: bool = False
    lenient_schemas: bool = False
    speculative: str = "ngram"
    spec_max_draft: int = 32
    log_level: str = "info"
    max_body_bytes: int = 4 * 1024 * 1024
    keepalive_s: float = 15.0
    drain_timeout: float = 30.0
    rate_limit_rpm: int = 0
    rate_limit_tpm: int = 0
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    sampling_defaults: dict[str, float] = field(default_factory=dict)
    state_db: str | None = None
    no_store: bool = False
    # The engine: "llamacpp" (a GGUF) or "vllm" (a Hugging Face folder or hub id), and
    # vLLM's own options (tether.engines.vllm.config.VllmOptions).
    engine: str = "llamacpp"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    enforce_eager: bool = False
    engine_args: dict[str, Any] = field(default_factory=dict)
    speculative_config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    # Several models (tether.pool): NAME=PATH entries, a folder of GGUFs, a TOML models
    # file, ALIAS=NAME entries, NAME=PATH@BASE LoRA adapters, the model for requests that
    # name none, and the bounds on what is resident (0: none).
    models: tuple[str, ...] = ()
    models_dir: str | None = None
    models_file: str | None = None
    aliases: tuple[str, ...] = ()
    loras: tuple[str, ...] = ()
    default_model: str | None = None
    max_loaded_models: int = 0
    models_memory_gb: float = 0.0
    model_ttl: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        self.engine_config()  # the engine's own checks, raised here at startup
        if self.log_level.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError(f"log_level must be a logging level name, got {self.log_level!r}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.keepalive_s <= 0:
            raise ValueError(f"keepalive_s must be positive, got {self.keepalive_s}")
        if self.drain_timeout < 0:
            raise ValueError(f"drain_timeout must be non-negative, got {self.drain_timeout}")
        if self.rate_limit_rpm < 0 or self.rate_limit_tpm < 0:
            raise ValueError("rate limits must be non-negative (0 turns a limit off)")
        if any(not key for key in self.api_keys):
            raise ValueError("api_keys must not contain empty keys")
        if self.tool_call_parser is not None and self.tool_call_parser not in PARSERS:
            raise ValueError(
                f"tool_call_parser must be one of {', '.join(PARSERS)}, "
                f"got {self.tool_call_parser!r}"
            )
        if self.reasoning_parser is not None and self.reasoning_parser not in REASONING_PARSERS:
            raise ValueError(
                f"reasoning_parser must be one of {', '.join(REASONING_PARSERS)}, "
                f"got {self.reasoning_parser!r}"
            )
        if self.chat_template is not None:
            self.chat_template_for(None)  # a broken template fails at startup
        try:
            SamplingDefaults().with_values(self.sampling_defaults)
        except ValueError as exc:
            raise ValueError(f"sampling_defaults: {exc}") from exc
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "vllm" and self.model_path is None:
            raise ValueError("engine vllm needs --model: a Hugging Face folder or hub id")
        self.vllm_options()  # vLLM's own checks
        if self.max_loaded_models < 0:
            raise ValueError("max_loaded_models must be non-negative (0: no bound)")
        if not 0 <= self.models_memory_gb < 1e9:
            raise ValueError(f"models_memory_gb must be in [0, 1e9), got {self.models_memory_gb}")
        if not 0 <= self.model_ttl < MAX_TTL_S:
            raise ValueError(
                f"model_ttl must be in [0, {MAX_TTL_S:g}) seconds (0: never), got {self.model_ttl}"
            )

    def chat_template_source(self) -> str | None:
        """The text of ``chat_template``; ``ValueError`` when it cannot be read."""
        if self.chat_template is None:
            return None
        try:
            return Path(self.chat_template).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"chat_template: cannot read {self.chat_template!r}: {exc}") from exc

    def chat_template_for(self, model_template: str | None) -> ChatTemplate:
        """The chat template in force: ``chat_template``'s, else the model's own, with the
        parsers the operator named."""
        source = self.chat_template_source() if self.chat_template else model_template
        markers = REASONING_PARSERS.get(self.reasoning_parser or "")
        return ChatTemplate(source, tool_parser=self.tool_call_parser, reasoning_markers=markers)

    @property
    def state_db_path(self) -> str:
        if self.state_db is not None:
            return self.state_db
        return str(Path(platformdirs.user_data_dir("tether")) / "state.db")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    def vllm_options(self) -> VllmOptions:
        backend = self.distributed_executor_backend
        if backend not in (None, "mp", "ray"):
            raise ValueError(f"distributed_executor_backend must be mp or ray, got {backend!r}")
        return VllmOptions(
            tensor_parallel_size=self.tensor_parallel_size,
            pipeline_parallel_size=self.pipeline_parallel_size,
            distributed_executor_backend=cast(Literal["mp", "ray"] | None, backend),
            gpu_memory_utilization=self.gpu_memory_utilization,
            dtype=self.dtype,
            enforce_eager=self.enforce_eager,
            speculative_config=dict(self.speculative_config),
            engine_args=dict(self.engine_args),
        )

    def engine_config(self) -> EngineConfig:
        """The engine's part of this configuration."""
        return EngineConfig(
            model=self.model_path,
            model_id=self.model_id,
            ctx_size=self.max_model_len or self.ctx_size,
            max_seqs=self.max_seqs,
            max_queue=self.max_queue,
            batch_tokens=self.batch_tokens,
            prefill_chunk=self.prefill_chunk,
            threads=self.threads,
            kv_unified=self.kv_unified,
            lenient_schemas=self.lenient_schemas,
            speculative=self.speculative,
            spec_max_draft=self.spec_max_draft,
        )
