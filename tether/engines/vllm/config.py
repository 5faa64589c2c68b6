"""``VllmOptions``: the vLLM engine arguments a user sets (``tether serve --engine vllm``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class VllmOptions:
    """vLLM's own knobs; ``engine_args`` passes any other ``AsyncEngineArgs`` field through."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    enforce_eager: bool = False
    speculative_config: dict[str, Any] = field(default_factory=dict)  # vLLM's, as given
    engine_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1 or self.pipeline_parallel_size < 1:
            raise ValueError("tensor_parallel_size and pipeline_parallel_size must be at least 1")
        if self.distributed_executor_backend not in (None, "mp", "ray"):
            raise ValueError(
                "distributed_executor_backend must be 'mp' or 'ray', "
                f"got {self.distributed_executor_backend!r}"
            )
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
