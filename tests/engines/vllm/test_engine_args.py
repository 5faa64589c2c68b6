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
