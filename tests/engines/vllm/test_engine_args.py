"""The ``AsyncEngineArgs`` a vLLM engine is started with (no vLLM needed)."""

from __future__ import annotations

from typing import Any

import pytest

from tether.engine.config import EngineConfig
from tether.engines.vllm import engine as vllm_engine
from tether.engines.vllm.config import VllmOptions
from tether.engines.vllm.engine import VllmEngine


@pytest.fixture(autouse=True)
def _without_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's own config class is not needed to see the arguments (nor installed here)."""

    def fields(config: dict[str, Any]) -> dict[str, Any]:
        return config

    monkeypatch.setattr(vllm_engine, "_structured_outputs_config", fields)


def test_speculative_config_is_passed_to_vllm_as_given() -> None:
    spec = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}
    engine = VllmEngine(EngineConfig(model="/m"), VllmOptions(speculative_config=spec))
    assert engine.engine_args()["speculative_config"] == spec


def test_no_speculative_config_unless_given() -> None:
    engine = VllmEngine(EngineConfig(model="/m"), VllmOptions())
    assert "speculative_config" not in engine.engine_args()


def test_vllms_processes_keep_freed_memory_unless_the_user_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The processes vLLM spawns inherit glibc's settings from the environment at their
    start: the engine sets them (each logprobs step would page-fault 16 MB anew otherwise)
    but leaves a value the user chose."""
    import asyncio
    import os
    import sys
    import types

    seen: dict[str, str | None] = {}

    class Stop(Exception):
        pass

    def from_engine_args(args: Any) -> Any:
        seen.update({name: os.environ.get(name) for name in vllm_engine.MALLOC})
        raise Stop

    fake_args = types.ModuleType("vllm.engine.arg_utils")
    fake_args.AsyncEngineArgs = lambda **kwargs: kwargs  # type: ignore[attr-defined]
    fake_llm = types.ModuleType("vllm.v1.engine.async_llm")
    fake_llm.AsyncLLM = types.SimpleNamespace(from_engine_args=from_engine_args)  # type: ignore[attr-defined]
    for name in ("vllm", "vllm.engine", "vllm.v1", "vllm.v1.engine"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", fake_args)
    monkeypatch.setitem(sys.modules, "vllm.v1.engine.async_llm", fake_llm)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "")  # so that its absence is restored after
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    engine = VllmEngine(EngineConfig(model="/m"), VllmOptions())
    with pytest.raises(Stop):
        asyncio.run(engine.start())
    assert seen == {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": "12345"}
