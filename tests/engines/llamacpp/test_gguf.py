"""What a GGUF's metadata recommends: sampling defaults (issue 12)."""

from __future__ import annotations

import pytest

from tether.engine.sampling_params import SamplingDefaults
from tether.engines.llamacpp.async_engine import AsyncEngine
from tether.engines.llamacpp.gguf import LLAMA_CPP_DEFAULTS, sampling_defaults


def test_without_metadata_the_defaults_are_llama_cpps() -> None:
    assert sampling_defaults(lambda key: None) == LLAMA_CPP_DEFAULTS
    assert LLAMA_CPP_DEFAULTS.as_dict() == {
        "temperature": 0.8,
        "top_p": 0.95,
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }


def test_the_models_general_sampling_metadata_wins() -> None:
    meta = {
        "general.sampling.temp": "1.000000",
        "general.sampling.top_k": "64",
        "general.sampling.top_p": "0.950000",
        "general.sampling.min_p": "0.000000",
        "general.sampling.penalty_repeat": "1.100000",
    }
    assert sampling_defaults(meta.get) == SamplingDefaults(
        temperature=1.0, top_k=64, top_p=0.95, min_p=0.0, repetition_penalty=1.1
    )


def test_a_bad_metadata_value_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    meta = {"general.sampling.top_p": "7", "general.sampling.temp": "warm"}
    assert sampling_defaults(meta.get) == LLAMA_CPP_DEFAULTS
    assert "general.sampling.top_p" in caplog.text and "general.sampling.temp" in caplog.text


def test_the_embedded_model_has_no_recommendation(model_engine: AsyncEngine) -> None:
    assert model_engine.sampling_defaults == LLAMA_CPP_DEFAULTS
