"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether.config import ServerConfig
from tether.engine.async_engine import AsyncEngine


@pytest.fixture(scope="session")
def model_engine() -> Iterator[AsyncEngine]:
    """One real engine on the default model, shared by the tests that need a model."""
    engine = AsyncEngine(ServerConfig(ctx_size=1024, max_seqs=16, batch_tokens=256, max_queue=8))
    engine.load()
    engine.start_thread()
    yield engine
    engine.shutdown()
