"""``VllmLoraEngine``: a LoRA adapter served as a model of its own, on its base model's vLLM
engine (vLLM's multi-LoRA: the adapter's requests batch with the base's and with other
adapters', each carrying its ``LoRARequest``).

The base engine is started with LoRA enabled (``enable_lora``, ``max_loras``,
``max_lora_rank``; ``lora_engine_args``) and stays loaded while an adapter uses it (the
pool holds a lease on it). The adapter is a PEFT folder (``adapter_config.json`` and
``adapter_model.safetensors``); vLLM loads it on its first request.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from tether.engine.errors import EngineError
from tether.engine.request import EngineStats, GenerationRequest
from tether.engine.sampling_params import SamplingDefaults
from tether.engines.vllm.engine import VllmEngine
from tether.engines.vllm.stream import VllmStream

_ids = itertools.count(1)  # vLLM's LoRA ids: unique and positive within the process
DEFAULT_RANK = 16


def adapter_rank(path: str) -> int:
    """The adapter's rank (``r`` in its ``adapter_config.json``)."""
    try:
        config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
        return int(config.get("r", DEFAULT_RANK))
    except (OSError, ValueError, TypeError):
        return DEFAULT_RANK


def lora_engine_args(paths: list[str]) -> dict[str, Any]:
    """What a base engine needs to serve these adapters."""
    ranks = [adapter_rank(path) for path in paths]
    # vLLM accepts only these ranks as its maximum.
    allowed = (8, 16, 32, 64, 128, 256, 320, 512)
    rank = next((r for r in allowed if r >= max(ranks, default=1)), allowed[-1])
    return {"enable_lora": True, "max_loras": max(len(paths), 1), "max_lora_rank": rank}


class VllmLoraEngine:
    """The ``Engine`` seam for one adapter on ``base``; starting and stopping it loads or
    unloads nothing but the adapter's own requests."""

    def __init__(self, base: VllmEngine, name: str, path: str) -> None:
        if not (Path(path) / "adapter_config.json").is_file():
            raise EngineError(f"no PEFT LoRA adapter (adapter_config.json) in {path!r}")
        self._base = base
        self._name = name
        self._path = path
        self._lora: Any = None
        self._streams: dict[str, VllmStream] = {}

    async def start(self) -> None:
        from vllm.lora.request import LoRARequest

        if not self._base.ready:
            raise EngineError("the base model's engine is not running")
        self._lora = LoRARequest(self._name, next(_ids), self._path)

    async def stop(self) -> None:
        for request_id in list(self._streams):
            await self._base.abort(request_id)
        self._streams.clear()

    @property
    def model_id(self) -> str:
        return self._name

    @property
    def context_length(self) -> int:
        return self._base.context_length

    @property
    def ready(self) -> bool:
        return self._lora is not None and self._base.ready

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._base.tokenize(text, add_special=add_special)

    def token_text(self, token_id: int) -> str:
        return self._base.token_text(token_id)

    @property
    def chat_template(self) -> str | None:
        return self._base.chat_template

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        return self._base.sampling_defaults

    def generate(self, request: GenerationRequest) -> VllmStream:
        if self._lora is None:
            raise EngineError("the LoRA model is not started")
        stream = self._base.generate(request, lora=self._lora)
        self._streams = {rid: s for rid, s in self._streams.items() if not s.finished}
        self._streams[request.request_id] = stream
        return stream

    def stats(self) -> EngineStats:
        live = [s for s in self._streams.values() if not s.finished]
        running = sum(1 for stream in live if stream.started)
        return EngineStats(running=running, waiting=len(live) - running)

    def end_all(self, error: EngineError) -> None:
        for stream in self._streams.values():
            stream.fail(error)

    async def abort(self, request_id: str) -> None:
        await self._base.abort(request_id)
