"""``EngineConfig``: what any engine needs to serve one model, validated at construction.

``tether.config.ServerConfig`` (the whole process) builds it; engines never see the server's
settings (host, keys, limits).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

DEFAULT_MODEL_ID = "google/gemma-3-270m"
SPECULATIVE = ("off", "ngram")  # speculative decoding without a draft model


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """One model and the size of its batch.

    ``model`` is the engine's own model reference (a GGUF path for llama.cpp); ``None`` is the
    engine's default model. ``model_id`` is the name clients send. ``ctx_size`` is the context
    of one sequence (prompt + completion); ``max_seqs`` sequences decode at once (each of
    ``n`` choices counts); ``max_queue`` requests may wait; ``batch_tokens`` is one step's
    token budget, shared by decoding and chunked prefill; ``prefill_chunk`` is the most
    prompt tokens a step may carry while other sequences are decoding (it bounds how long a
    new prompt can stall running streams; an idle engine prefills up to ``batch_tokens``);
    ``threads=0`` is one per CPU. ``lenient_schemas``: JSON Schema keywords that cannot be
    enforced during generation are advisory instead of refused (``tether.engine.guidance``).
    ``lora_path``: a LoRA adapter (GGUF) applied to the model at ``lora_scale``.
    ``speculative``: ``"ngram"`` drafts up to ``spec_max_draft`` tokens per sequence and
    step from earlier text of the sequence (prompt lookup) and verifies them in the same
    decode, when the engine measures that it pays; ``"off"`` never drafts.
    """

    model: str | None = None
    model_id: str = DEFAULT_MODEL_ID
    ctx_size: int = 4096
    max_seqs: int = 64
    max_queue: int = 256
    batch_tokens: int = 512
    prefill_chunk: int = 256
    threads: int = 0
    kv_unified: bool = False
    lenient_schemas: bool = False
    # A LoRA adapter applied to the model (its GGUF, and the scale it is applied at).
    lora_path: str | None = None
    lora_scale: float = 1.0
    speculative: str = "ngram"
    spec_max_draft: int = 32

    def with_lora(self, path: str, scale: float) -> EngineConfig:
        return dataclasses.replace(self, lora_path=path, lora_scale=scale)

    def __post_init__(self) -> None:
        if self.ctx_size < 16:
            raise ValueError(f"ctx_size must be at least 16, got {self.ctx_size}")
        if not 1 <= self.max_seqs <= 256:
            raise ValueError(
                f"max_seqs must be in [1, 256] (llama.cpp's limit), got {self.max_seqs}"
            )
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {self.max_queue}")
        if self.batch_tokens < self.max_seqs:
            raise ValueError(
                f"batch_tokens ({self.batch_tokens}) must be at least max_seqs ({self.max_seqs}) "
                "so every running sequence can decode in one step"
            )
        if self.prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be at least 1, got {self.prefill_chunk}")
        if self.speculative not in SPECULATIVE:
            raise ValueError(
                f"speculative must be one of {', '.join(SPECULATIVE)}, got {self.speculative!r}"
            )
        if not 1 <= self.spec_max_draft <= 64:
            raise ValueError(f"spec_max_draft must be in [1, 64], got {self.spec_max_draft}")
        if self.threads < 0:
            raise ValueError(f"threads must be non-negative, got {self.threads}")

    @property
    def max_draft(self) -> int:
        """Tokens a sequence may draft per step (0: no speculative decoding)."""
        return self.spec_max_draft if self.speculative == "ngram" else 0

    @property
    def n_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2))
