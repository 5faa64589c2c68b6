"""Engines for the pool's models: which engine a spec names, built on the shared decode
thread, and what it is estimated to take in memory before it loads (the engines are
imported only when chosen: vLLM is an optional extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from tether.engine.base import Engine
from tether.pool import memory
from tether.pool.spec import ModelSpec

log = logging.getLogger(__name__)


class ServedEngine(Engine, Protocol):
    """An engine with a lifecycle: started before it serves, stopped when unloaded."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EngineFactory:
    """Builds the engine of a spec; llama.cpp engines share one decode thread."""

    def __init__(self) -> None:
        self._decoder: object | None = None

    def build(self, spec: ModelSpec) -> ServedEngine:
        config = spec.config
        if config.engine == "vllm":
            from tether.engines.vllm.engine import VllmEngine

            engine_config = config.engine_config()
            if spec.lora is not None:
                engine_config = engine_config.with_lora(spec.lora.path, spec.lora.scale)
            return VllmEngine(engine_config, config.vllm_options())
        from tether.engines.llamacpp.async_engine import AsyncEngine
        from tether.engines.llamacpp.decode_thread import DecodeThread

        if self._decoder is None:
            self._decoder = DecodeThread()
        assert isinstance(self._decoder, DecodeThread)
        engine_config = config.engine_config()
        if spec.lora is not None:
            engine_config = engine_config.with_lora(spec.lora.path, spec.lora.scale)
        return AsyncEngine(engine_config, self._decoder)

    def estimate(self, spec: ModelSpec) -> int:
        """Bytes the model will take once loaded; ``FileNotFoundError`` when its files are
        missing."""
        config = spec.config
        if config.engine == "vllm":
            path = Path(config.model_path or "")
            if not path.exists():
                raise FileNotFoundError(f"no model at {config.model_path!r}")
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            return sum(p.stat().st_size for p in files)
        from tether.engines.llamacpp.gguf import resolve_model_path
        from tether.engines.llamacpp.gguf_header import read_metadata

        gguf_path = resolve_model_path(config.model_path)
        weights = memory.file_size(gguf_path)
        if spec.lora is not None:
            weights += memory.file_size(spec.lora.path)
        shape = None
        try:
            shape = memory.kv_shape(read_metadata(gguf_path))
        except Exception as exc:  # a corrupt header: the load will say what is wrong
            log.debug("cannot read the GGUF header of %s: %r", gguf_path, exc)
        engine = config.engine_config()
        return memory.estimate_bytes(
            weights, shape, engine.ctx_size, engine.max_seqs, engine.batch_tokens
        )
