"""How much memory a model will take once loaded, and how much the machine has.

The estimate is the GGUF file (its weights are mapped and read whole) plus the KV cache
its settings allocate: for every layer, ``ctx_size × max_seqs`` cells of
``n_head_kv × (key_length + value_length)`` f16 values. Layers with a sliding window keep
only the window (plus a batch) per sequence; which layers those are is the architecture's
rule in llama.cpp, known here for the families that use one. The header is read
by ``gguf_header.read_metadata`` (the header only, never the tensors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
_F16 = 2
# Every n-th layer attends globally, the others through the sliding window (llama.cpp's
# ``hparams.set_swa_pattern`` for these architectures).
_SWA_PATTERN = {"gemma3": 6, "gemma2": 2, "cohere2": 4, "gemma3n": 5, "llama4": 4}


@dataclass(frozen=True, slots=True)
class KvShape:
    """What the KV cache size depends on, from the model's metadata."""

    layers: int
    kv_heads: int
    key_length: int
    value_length: int
    sliding_window: int = 0
    swa_every: int = 0  # every n-th layer is global; 0: no sliding window layers

    def bytes(self, ctx_size: int, max_seqs: int, batch_tokens: int) -> int:
        per_cell = self.kv_heads * (self.key_length + self.value_length) * _F16
        cells = ctx_size * max_seqs
        if not self.sliding_window or not self.swa_every:
            return self.layers * cells * per_cell
        global_layers = self.layers // self.swa_every
        window = min(ctx_size, self.sliding_window + batch_tokens) * max_seqs
        return (global_layers * cells + (self.layers - global_layers) * window) * per_cell


def kv_shape(metadata: dict[str, Any]) -> KvShape | None:
    """The KV shape from GGUF metadata (``general.architecture`` and its ``{arch}.*``
    keys), or None when the keys are missing."""
    arch = str(metadata.get("general.architecture", ""))

    def number(key: str, default: int | None = None) -> int | None:
        value = metadata.get(f"{arch}.{key}", default)
        if isinstance(value, list):  # per-layer head counts: the largest bounds the cache
            value = max(value) if value else default
        return int(value) if value is not None else None

    layers = number("block_count")
    heads = number("attention.head_count")
    embedding = number("embedding_length")
    if layers is None or heads is None or embedding is None or heads == 0:
        return None
    kv_heads = number("attention.head_count_kv", heads) or heads
    key_length = number("attention.key_length", embedding // heads) or embedding // heads
    value_length = number("attention.value_length", key_length) or key_length
    window = number("attention.sliding_window", 0) or 0
    return KvShape(layers, kv_heads, key_length, value_length, window, _SWA_PATTERN.get(arch, 0))


def estimate_bytes(weights: int, shape: KvShape | None, ctx: int, seqs: int, batch: int) -> int:
    """The weights, the KV cache (the whole context in every layer when the shape is not
    known), and the compute buffers (about a batch of activations; a fixed 5% here)."""
    kv = shape.bytes(ctx, seqs, batch) if shape is not None else 0
    return int((weights + kv) * 1.05)


def file_size(path: str) -> int:
    return Path(path).stat().st_size


def available_bytes() -> int:
    """``MemAvailable`` from ``/proc/meminfo``: what can be allocated without swapping."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 0


def total_bytes() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def resident_bytes() -> int:
    """This process's resident set."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
