"""The ``AsyncEngineArgs`` a vLLM engine is started with (no vLLM needed)."""

from __future__ import annotations

from tether.engine.config import EngineConfig
from tether.engines.vllm.config import VllmOptions
from tether.engines.vllm.engine import VllmEngine


def test_speculative_config_is_passed_to_vllm_as_given() -> None:
    spec = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}
    engine = VllmEngine(EngineConfig(model="/m"), VllmOptions(speculative_config=spec))
    assert engine.engine_args()["speculative_config"] == spec


def test_no_speculative_config_unless_given() -> None:
    engine = VllmEngine(EngineConfig(model="/m"), VllmOptions())
    assert "speculative_config" not in engine.engine_args()
