"""Load generator behind ``tether bench``: any OpenAI-compatible server, a concurrency sweep.

    tether bench --url http://127.0.0.1:8000 --concurrency 1,4,16 --requests 32 \\
        --prompt-tokens 128 --max-tokens 128 [--name tether] [--out DIR]
    tether bench --chart DIR/bench-tether.json DIR/bench-llama-cpp.json --out DIR

Every request is a streamed ``POST /v1/completions`` with ``max_tokens`` = ``min_tokens`` =
``--max-tokens`` and ``ignore_eos``, so every server writes the same number of tokens:
vLLM and llama.cpp's ``llama-server`` honour ``ignore_eos``, llama-cpp-python's server
honours ``min_tokens``, Tether honours ``ignore_eos``; each ignores the fields it does not
know. Sampling is greedy (``temperature: 0``), as in vLLM's benchmark.

Prompt length: the prompts are cut from one fixed text. A probe request (``max_tokens: 1``)
reads the server's ``usage.prompt_tokens`` and the word count is scaled until it matches
``--prompt-tokens`` (the result file records the measured count; a server that reports no
usage gets an estimate of 0.75 words per token). Each request starts at a different word of
the text, so no request can reuse another's cached prefix: this measures serving, not caching.

Closed loop (the default): at each concurrency level, that many workers send requests back to
back until ``--requests`` have been sent or ``--duration`` seconds have passed (requests
already running finish).

Open loop (``--rate R``, as ``vllm bench serve --request-rate``): requests arrive as a
Poisson process of R requests/s, each sent at its arrival time whether or not earlier ones
have finished, until ``--requests`` have been sent or ``--duration`` has passed. The arrival
times come from a fixed seed, so two servers get the same traffic. Several rates
(``--rate 0.5,1.2``) run one after the other.

Constrained decoding (``--response-format FILE``, a JSON file holding an OpenAI
``response_format`` object: ``bench.response_format``): every request carries it, and asks
for neither ``ignore_eos`` nor ``min_tokens``: a constrained answer ends where its text is
complete (with the end token banned, a complete grammar leaves nothing to sample), so the
output lengths are the model's, at most ``--max-tokens``, and the table's tokens/s count
what each server reports. Tether and vLLM read ``response_format`` on ``/v1/completions``;
llama.cpp's ``llama-server`` reads it only on its chat endpoint, so give it its own field
too (``--extra-body '{"json_schema": SCHEMA}'``; ``tether bench compare`` does).

Traffic goes only to ``--url``. Metric definitions: ``bench/metrics.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from typing import Any

import httpx
from rich.progress import Progress

from tether.bench.completions import one_request, pick_model
from tether.bench.metrics import Sample, summarize
from tether.bench.prompts import calibrate, prompt
from tether.client.api import TIMEOUT, base_url


@dataclass(frozen=True)
class BenchSettings:
    """One sweep: where, what, how hard."""

    url: str
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 32
    duration_s: float = 120.0
    prompt_tokens: int = 128
    max_tokens: int = 128
    model: str | None = None
    api_key: str | None = None
    name: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    rates: tuple[float, ...] = ()  # open loop: Poisson arrivals per second, instead of levels
    response_format: dict[str, Any] | None = None  # sent with every request

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError("concurrency levels must be positive integers")
        if self.rates and min(self.rates) <= 0:
            raise ValueError("--rate must be positive")
        if self.requests < 1 or self.prompt_tokens < 1 or self.max_tokens < 1:
            raise ValueError("--requests, --prompt-tokens and --max-tokens must be positive")
        if self.duration_s <= 0:
            raise ValueError("--duration must be positive")

    def command(self) -> str:
        """The ``tether bench`` command that reproduces this run (never with the API key)."""
        parts = [
            "tether bench",
            f"--url {self.url}",
            (
                "--rate " + ",".join(f"{r:g}" for r in self.rates)
                if self.rates
                else "--concurrency " + ",".join(map(str, self.concurrency))
            ),
            f"--requests {self.requests}",
            f"--duration {self.duration_s:g}",
            f"--prompt-tokens {self.prompt_tokens}",
            f"--max-tokens {self.max_tokens}",
        ]
        if self.model:
            parts.append(f"--model {shlex.quote(self.model)}")
        if self.name:
            parts.append(f"--name {shlex.quote(self.name)}")
        if self.extra_body:
            parts.append(f"--extra-body {shlex.quote(json.dumps(self.extra_body))}")
        if self.response_format is not None:
            parts.append(f"--response-format {shlex.quote(json.dumps(self.response_format))}")
        return " ".join(parts)

    @property
    def label(self) -> str:
        """The name of this server in tables and charts: ``--name``, else host:port."""
        return self.name or httpx.URL(base_url(self.url)).netloc.decode()


# -- the requests ----------------------------------------------------------------------


def request_body(settings: BenchSettings, model: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": text,
        "max_tokens": settings.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if settings.response_format is None:
        body.update(min_tokens=settings.max_tokens, ignore_eos=True)
    else:
        body["response_format"] = settings.response_format
    return {**body, **settings.extra_body}


def _client(
    settings: BenchSettings, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    # An open loop has no bound on requests in flight; the server's queue is what limits it.
    most = settings.requests if settings.rates else max(settings.concurrency)
    return httpx.AsyncClient(
        base_url=base_url(settings.url) + "/v1",
        headers=headers,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=most + 1, max_keepalive_connections=most + 1),
        transport=transport,
    )


# -- the sweep -------------------------------------------------------------------------


@dataclass
class Level:
    """One concurrency level (or, with ``rate``, one open-loop rate) in progress."""

    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    rate: float | None = None


ARRIVAL_SEED = 0  # the same arrival times for every server and every run


def arrival_times(rate: float, count_: int, seed: int = ARRIVAL_SEED) -> list[float]:
    """Seconds from the start at which each of ``count_`` Poisson arrivals comes (the first
    at 0, as in ``vllm bench serve``), ``rate`` per second on average."""
    rng = random.Random(seed)
    times, now = [], 0.0
    for i in range(count_):
        if i:
            now += rng.expovariate(rate)
        times.append(now)
    return times


@dataclass
class Traffic:
    """What every request of one sweep shares: the client, the settings, the model, the
    prompt length in words, and the prompt numbering (no prompt repeats across levels)."""

    http: httpx.AsyncClient
    settings: BenchSettings
    model: str
    words: int
    numbers: count[int]

    def next_body(self) -> dict[str, Any]:
        return request_body(self.settings, self.model, prompt(next(self.numbers), self.words))


async def run_level(traffic: Traffic, level: Level, advance: Callable[[], None]) -> float:
    """Run one level; return its wall time (first send to last completion). ``advance()``
    moves the progress bar."""
    if level.rate is not None:
        return await _open_loop(traffic, level, level.rate, advance)
    settings = traffic.settings
    started = time.perf_counter()
    deadline = started + settings.duration_s
    sent = count()

    async def worker() -> None:
        while next(sent) < settings.requests and time.perf_counter() < deadline:
            level.samples.append(await one_request(traffic.http, traffic.next_body()))
            advance()

    await asyncio.gather(*(worker() for _ in range(level.concurrency)))
    return time.perf_counter() - started


async def _open_loop(
    traffic: Traffic, level: Level, rate: float, advance: Callable[[], None]
) -> float:
    started = time.perf_counter()
    in_flight = 0

    async def send(body: dict[str, Any]) -> None:
        nonlocal in_flight
        in_flight += 1
        level.concurrency = max(level.concurrency, in_flight)  # the peak, for the record
        try:
            level.samples.append(await one_request(traffic.http, body))
        finally:
            in_flight -= 1
        advance()

    tasks = []
    for at in arrival_times(rate, traffic.settings.requests):
        if at > traffic.settings.duration_s:
            break
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(traffic.next_body())))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def _levels(settings: BenchSettings) -> list[Level]:
    if settings.rates:
        return [Level(0, rate=rate) for rate in settings.rates]
    return [Level(c) for c in settings.concurrency]


async def sweep(
    settings: BenchSettings,
    progress: Progress,
    transport: httpx.AsyncBaseTransport | None = None,
    first_prompt: int = 1,
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole benchmark: what ``bench.report.document`` wraps into the result file.
    ``transport`` is for tests (a scripted server); by default, the network. Prompts are
    numbered from ``first_prompt`` (prompt 0 calibrates); ``next_prompt`` in the result
    is where a following sweep on the same server should start, to reuse no prefix.
    ``calibration``: an earlier sweep's ``prompt`` on the same server, reused rather than
    probed again when it was made for the same ``prompt_tokens``."""
    async with _client(settings, transport) as http:
        model = await pick_model(http, settings.model)
        if calibration is None or calibration["target_tokens"] != settings.prompt_tokens:
            calibration = await calibrate(http, model, settings.prompt_tokens)
        traffic = Traffic(http, settings, model, calibration["words"], count(first_prompt))
        results = []
        for level in _levels(settings):
            what = f"rate {level.rate:g}/s" if level.rate else f"concurrency {level.concurrency}"
            task = progress.add_task(what, total=settings.requests)
            wall = await run_level(traffic, level, partial(progress.advance, task))
            progress.update(task, total=len(level.samples), completed=len(level.samples))
            results.append(summarize(level.concurrency, level.samples, wall, rate=level.rate))
    return {
        "model": model,
        "prompt": calibration,
        "results": results,
        "next_prompt": next(traffic.numbers),
    }
