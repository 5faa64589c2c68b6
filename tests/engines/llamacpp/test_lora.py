"""A LoRA adapter on the llama.cpp engine: applied to the engine's own context, it changes
the logits by its scale's share, and an adapter llama.cpp would crash on, or a file that is
not an adapter, is refused before llama.cpp sees it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.gguf_files import lora_adapter
from tether.engine.errors import EngineError
from tether.engines.llamacpp.gguf import default_model_path
from tether.engines.llamacpp.runner import ModelRunner, RunnerConfig, check_lora

PROMPT = "The capital of France is"


def last_logits(lora: Path | None = None, scale: float = 1.0) -> np.ndarray:
    config = RunnerConfig(
        default_model_path(),
        64,
        n_seq_max=1,
        n_batch=64,
        n_threads=2,
        lora_path=str(lora) if lora else None,
        lora_scale=scale,
    )
    runner = ModelRunner(config)
    try:
        runner.batch.add(runner.vocab.tokenize(PROMPT, True), 0, 0, True)
        runner.decode()
        return np.array(runner.logits(1)[0])
    finally:
        runner.close()


def test_an_adapter_changes_the_logits_in_proportion_to_its_scale(tmp_path: Path) -> None:
    adapter = lora_adapter(tmp_path)
    base = last_logits()
    full = last_logits(adapter, 1.0)
    half = last_logits(adapter, 0.5)
    off = last_logits(adapter, 0.0)
    moved_full = float(np.abs(full - base).max())
    moved_half = float(np.abs(half - base).max())
    assert moved_full > 1.0  # a rank-4 adapter on q and v of every layer: several nats
    assert 0.3 * moved_full < moved_half < 0.7 * moved_full
    np.testing.assert_allclose(off, base, atol=1e-4)


def test_a_file_that_is_not_an_adapter_is_refused() -> None:
    with pytest.raises(EngineError, match="is not a LoRA adapter"):
        check_lora(default_model_path())


def test_an_embedding_adapter_is_refused_before_llama_cpp_aborts(tmp_path: Path) -> None:
    adapter = lora_adapter(tmp_path, embedding=True)
    with pytest.raises(EngineError, match="adapts the token embedding"):
        check_lora(str(adapter))
    # In a child: had the check let it through, llama.cpp would abort that process.
    code = textwrap.dedent(
        f"""
        from tether.engine.errors import EngineError
        from tether.engines.llamacpp.gguf import default_model_path
        from tether.engines.llamacpp.runner import ModelRunner, RunnerConfig
        cfg = RunnerConfig(default_model_path(), 64, 1, 64, 2, lora_path={str(adapter)!r})
        try:
            ModelRunner(cfg)
        except EngineError as exc:
            print("refused:", exc)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "refused: " in child.stdout
