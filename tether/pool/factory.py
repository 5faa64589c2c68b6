"""Engines for the pool's models: which engine a spec names, built on the shared decode
thread, and what it is estimated to take in memory before it loads (the engines are
imported only when chosen: vLLM is an optional extra)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Protocol

from tether.engine.base import Engine
from tether.pool import memory
from tether.pool.spec import ModelSpec, ModelTable

log = logging.getLogger(__name__)


class ServedEngine(Engine, Protocol):
    """An engine with a lifecycle: started before it serves, stopped when unloaded."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EngineFactory:
    """Builds the engine of a spec; llama.cpp engines share one decode thread. A LoRA
    adapter on llama.cpp is an engine of its own (a context with the adapter set); on vLLM
    it is served by its base model's engine (vLLM's multi-LoRA), which is started with LoRA
    enabled for the adapters the table puts on it."""

    def __init__(self, table: ModelTable | None = None) -> None:
        self._decoder: object | None = None
        self._adapters: dict[str, list[str]] = {}  # a vLLM base model → its adapters
        for spec in table.specs if table is not None else ():
            if spec.lora is not None and spec.config.engine == "vllm":
                self._adapters.setdefault(spec.lora.base, []).append(spec.lora.path)

    def base_of(self, spec: ModelSpec) -> str | None:
        """The model whose engine serves ``spec`` (a vLLM LoRA adapter's base), or None."""
        if spec.lora is not None and spec.config.engine == "vllm":
            return spec.lora.base
        return None

    def build(self, spec: ModelSpec, base: ServedEngine | None = None) -> ServedEngine:
        config = spec.config
        if config.engine == "vllm":
            from tether.engines.vllm.engine import VllmEngine

            if spec.lora is not None:
                from tether.engines.vllm.lora import VllmLoraEngine

                if not isinstance(base, VllmEngine):
                    raise ValueError(f"LoRA {spec.name!r}: its base is not a vLLM model")
                return VllmLoraEngine(base, spec.name, spec.lora.path)
            options = config.vllm_options()
            adapters = self._adapters.get(spec.name)
            if adapters:
                from tether.engines.vllm.lora import lora_engine_args

                engine_args = {**lora_engine_args(adapters), **options.engine_args}
                options = dataclasses.replace(options, engine_args=engine_args)
            return VllmEngine(config.engine_config(), options)
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
            # A hub id (no local path), or a GPU (not this machine's memory): unknown.
            path = Path(spec.lora.path if spec.lora is not None else config.model_path or "")
            if not path.exists() or not _vllm_on_cpu():
                return 0
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


def _vllm_on_cpu() -> bool:
    """Whether vLLM runs on this machine's CPU (its build for CPUs), so its weights and KV
    cache take host memory."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


class GivenEngine:
    """The factory of a pool over one engine built and run elsewhere (tests,
    ``create_app(engine, ...)``): it builds nothing and estimates nothing."""

    def __init__(self, engine: ServedEngine) -> None:
        self._engine = engine

    def build(self, spec: ModelSpec, base: ServedEngine | None = None) -> ServedEngine:
        return self._engine

    def estimate(self, spec: ModelSpec) -> int:
        return 0

    def base_of(self, spec: ModelSpec) -> str | None:
        return None


async def stop_quietly(engine: ServedEngine) -> None:
    """Stop ``engine``; a failure to stop is logged, never raised (the pool goes on)."""
    try:
        await engine.stop()
    except Exception:
        log.exception("stopping an engine failed")
