"""A pool of scripted engines: ``FakeFactory`` builds ``PoolEngine``s (the API tests'
``FakeEngine`` with a lifecycle), with the sizes, load times and failures a test asks for,
and records what it built and stopped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tests.api.fake_engine import FakeEngine, Script
from tether.engine.errors import EngineShutdownError
from tether.pool.spec import ModelSpec

GIB = 1024**3


@dataclass
class PoolEngine(FakeEngine):
    load_s: float = 0.0
    stop_s: float = 0.0
    load_error: str | None = None
    events: list[str] = field(default_factory=list)

    async def start(self) -> None:
        self.events.append(f"start {self.model_id}")
        if self.load_s:
            await asyncio.sleep(self.load_s)
        if self.load_error is not None:
            raise RuntimeError(self.load_error)

    async def stop(self) -> None:
        # Like the llama.cpp engine: requests still open end with an error.
        self.ended_by = EngineShutdownError("the model was unloaded")
        if self.stop_s:
            await asyncio.sleep(self.stop_s)
        self.events.append(f"stop {self.model_id}")


class FakeFactory:
    def __init__(
        self,
        sizes: dict[str, int] | None = None,
        load_s: float = 0.0,
        stop_s: float = 0.0,
        broken: dict[str, str] | None = None,
        script: Script | None = None,
    ) -> None:
        self.script = script
        self.sizes = sizes or {}
        self.load_s = load_s
        self.stop_s = stop_s
        self.broken = broken or {}
        self.events: list[str] = []
        self.engines: dict[str, PoolEngine] = {}

    def base_of(self, spec: ModelSpec) -> str | None:
        """A LoRA model shares its base's engine here (as on vLLM)."""
        return spec.lora.base if spec.lora is not None else None

    def build(self, spec: ModelSpec, base: PoolEngine | None = None) -> PoolEngine:
        engine = PoolEngine(
            model_id=spec.name,
            load_s=self.load_s,
            stop_s=self.stop_s,
            load_error=self.broken.get(spec.name),
            events=self.events,
        )
        if self.script is not None:
            engine.default = self.script
        self.engines[spec.name] = engine
        return engine

    def estimate(self, spec: ModelSpec) -> int:
        if spec.path and "missing" in spec.path:
            raise FileNotFoundError(f"no GGUF file at {spec.path!r}")
        return self.sizes.get(spec.name, GIB)

    def started(self) -> list[str]:
        return [event.split()[1] for event in self.events if event.startswith("start")]

    def stopped(self) -> list[str]:
        return [event.split()[1] for event in self.events if event.startswith("stop")]
