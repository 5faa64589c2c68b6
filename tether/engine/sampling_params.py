"""Per-request sampling parameters, validated once at construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tether.engine.errors import InvalidRequestError
from tether.engine.structured import StructuredOutput

MAX_N = 128
MAX_TOP_LOGPROBS = 20


def _check(ok: bool, param: str, message: str) -> None:
    if not ok:
        raise InvalidRequestError(f"{param}: {message}", param=param)


@dataclass(frozen=True, slots=True)
class SamplingDefaults:
    """The sampling fields a request may leave out, and what it is then sampled with.

    The fields' own defaults are the neutral ones (temperature 1 over the whole vocabulary);
    an engine reports its model's (``Engine.sampling_defaults``) and the server may override
    them. ``SamplingParams`` has these fields too (it extends this class); ``with_values``
    checks names, types and ranges as ``SamplingParams`` does.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def with_values(self, values: Mapping[str, Any]) -> SamplingDefaults:
        names = [f.name for f in fields(SamplingDefaults)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InvalidRequestError(
                f"{unknown[0]}: not a sampling field ({', '.join(sorted(names))})", unknown[0]
            )
        merged = {**self.as_dict(), **values}
        for name, value in merged.items():
            integral = name == "top_k"
            kinds: tuple[type, ...] = (int,) if integral else (int, float)
            ok = isinstance(value, kinds) and not isinstance(value, bool)
            _check(ok, name, "must be an int" if integral else "must be a number")
            merged[name] = value if integral else float(value)
        SamplingParams(**merged)  # the ranges
        return SamplingDefaults(**merged)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(SamplingDefaults)}


@dataclass(frozen=True, slots=True)
class SamplingParams(SamplingDefaults):
    """How to sample one request. Raises ``InvalidRequestError`` naming the field when out of range.

    ``temperature == 0`` means greedy. ``top_k == 0`` and ``top_p == 1`` and ``min_p == 0``
    disable those filters. ``seed=None`` means the engine picks one (and reports it).
    ``logprobs`` is the number of top alternatives to return per token (``None``: none);
    the sampled token's own logprob is always computed. ``structured`` constrains the output
    (JSON schema, regex, choice or tool call; the engine translates it). ``prompt_logprobs``
    asks for each prompt token's logprob given the tokens before it (``echo`` + logprobs).
    ``keep_special`` are texts (a tool-call format's markers) that the generated text keeps
    where the model writes them as special tokens, whose text is otherwise dropped.
    The sampling fields themselves (temperature … frequency_penalty) are ``SamplingDefaults``'.
    """

    max_tokens: int = 16
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    logprobs: int | None = None
    ignore_eos: bool = False
    structured: StructuredOutput | None = None
    prompt_logprobs: bool = False
    keep_special: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.max_tokens >= 1, "max_tokens", "must be at least 1")
        _check(self.temperature >= 0, "temperature", "must be non-negative")
        _check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _check(self.top_k >= 0, "top_k", "must be non-negative")
        _check(0 <= self.min_p <= 1, "min_p", "must be in [0, 1]")
        _check(self.repetition_penalty > 0, "repetition_penalty", "must be positive")
        _check(-2 <= self.presence_penalty <= 2, "presence_penalty", "must be in [-2, 2]")
        _check(-2 <= self.frequency_penalty <= 2, "frequency_penalty", "must be in [-2, 2]")
        _check(1 <= self.n <= MAX_N, "n", f"must be in [1, {MAX_N}]")
        _check(
            self.logprobs is None or 0 <= self.logprobs <= MAX_TOP_LOGPROBS,
            "logprobs",
            f"must be in [0, {MAX_TOP_LOGPROBS}]",
        )
        _check(self.seed is None or self.seed >= 0, "seed", "must be non-negative")
        _check(
            all(isinstance(s, str) and s for s in self.stop), "stop", "must be non-empty strings"
        )
        _check(len(self.stop) <= 16, "stop", "at most 16 stop strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
