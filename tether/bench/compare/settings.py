"""What one ``tether bench compare`` runs: the two servers' names and ``CompareSettings``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.bench import llama_server

LLAMA, TETHER = "llama-server", "tether"
# "random": prompts cut from one text, exactly max_tokens out (ignore_eos), at every level;
# "quoting": one stream whose answer quotes its prompt (``quoting``), four servers.
WORKLOADS = ("random", "quoting")


@dataclass(frozen=True)
class CompareSettings:
    rounds: int = 3
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    open_requests: int = 48
    load: float = 0.75
    rate: float | None = None  # fixed open-loop rate instead of load × capacity
    prompt_tokens: int = 128
    max_tokens: int = 128
    model: str | None = None  # a GGUF path; None: the embedded default model
    threads: int = 0
    slots: int = 64
    ctx_per_slot: int = 4096
    batch: int = 512
    out: Path = Path("bench-results/compare")
    cache: Path = field(default_factory=llama_server.default_cache)
    llama_server_binary: Path | None = None
    response_format: dict[str, Any] | None = None  # constrained decoding, on both servers
    workloads: tuple[str, ...] = WORKLOADS
    quoting_requests: int = 3  # per server and round

    @property
    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def closed_requests(self, concurrency: int) -> int:
        return 8 if concurrency == 1 else 3 * concurrency
