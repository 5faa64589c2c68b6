"""Helpers for engine tests against the real model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tether.engine.request import GenerationRequest, StepOutput
from tether.engine.sampling_params import SamplingParams
from tether.engines.llamacpp.async_engine import AsyncEngine

_ids = iter(range(1_000_000))


def chat(text: str) -> str:
    return f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"


@dataclass
class Choice:
    pieces: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    outputs: list[StepOutput] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def last(self) -> StepOutput:
        return self.outputs[-1]


async def generate(engine: AsyncEngine, prompt: str, **params: object) -> list[Choice]:
    request = GenerationRequest(
        f"test-{next(_ids)}",
        engine.tokenize(prompt),
        SamplingParams(**params),  # type: ignore[arg-type]
    )
    choices: dict[int, Choice] = {}
    async with engine.generate(request) as stream:
        async for out in stream:
            choice = choices.setdefault(out.index, Choice())
            choice.pieces.append(out.text)
            choice.token_ids.extend(t.id for t in out.tokens)
            choice.outputs.append(out)
    return [choices[i] for i in sorted(choices)]


async def generate_many(engine: AsyncEngine, prompts: list[str], **params: object) -> list[Choice]:
    results = await asyncio.gather(*(generate(engine, p, **params) for p in prompts))
    return [r[0] for r in results]
