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

Traffic goes only to ``--url``. Metric definitions: ``bench/metrics.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shlex
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from typing import Any

import httpx
from rich.progress import Progress

from tether.bench.metrics import Sample, summarize
from tether.client.api import (
    DONE,
    TIMEOUT,
    ServerError,
    TokenMeter,
    Unreachable,
    base_url,
    error_message,
    model_cards,
    sse_data,
)

TEXT = (
    "The harbour town woke slowly on market days. Fishermen hauled their crates up the stone "
    "ramp while the bakers opened their shutters and the smell of warm bread drifted over the "
    "water. Children ran between the stalls, counting the coins they had saved for sweets, "
    "and old men argued about the weather as they had done every morning for fifty years. "
    "A clockmaker set out trays of brass gears beside a woman selling wool dyed with onion "
    "skins and walnut shells. Travellers from the hill villages arrived with cheese wrapped "
    "in leaves, honey in clay jars, and stories of wolves that nobody quite believed. By noon "
    "the square was loud with bargaining, music from a fiddler near the fountain, and the "
    "clatter of carts on the cobbles. In the afternoon the wind turned, clouds gathered over "
    "the lighthouse, and the traders began to pack away their goods, promising one another "
    "better prices next week. When the first drops of rain fell, the square emptied in "
    "minutes, leaving only the pigeons and a lost glove on the steps of the town hall. "
)
WORDS = TEXT.split()
WORDS_PER_TOKEN = 0.75  # English prose on common tokenizers: the estimate without a probe
PROBES = 4


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
        return " ".join(parts)

    @property
    def label(self) -> str:
        """The name of this server in tables and charts: ``--name``, else host:port."""
        return self.name or httpx.URL(base_url(self.url)).netloc.decode()


def prompt(index: int, words: int) -> str:
    """The ``index``-th prompt: ``words`` words of ``TEXT`` starting at a different word.
    After every start has been used once, the prompts start with their round number, so
    no two prompts ever share more than their first token."""
    cycle, at = divmod(index, len(WORDS))
    start = (at * 7) % len(WORDS)  # 7 is coprime with the word count: every start is used
    text = [WORDS[(start + k) % len(WORDS)] for k in range(words)]
    if cycle:
        text[0] = f"({cycle}) {text[0]}"
    return " ".join(text)


# -- requests --------------------------------------------------------------------------


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


async def _get_json(http: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    try:
        response = await http.request(method, path, **kw)
    except httpx.TransportError as exc:
        where = base_url(str(http.base_url))
        raise Unreachable(f"cannot reach {where}: {exc or type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise ServerError(response.status_code, error_message(response.text))
    return response.json()


async def pick_model(http: httpx.AsyncClient, settings: BenchSettings) -> str:
    if settings.model:
        return settings.model
    cards = model_cards(await _get_json(http, "GET", "/models"))
    if not cards:
        raise ServerError(200, "the server lists no model; pass --model")
    return str(cards[0]["id"])


async def calibrate(http: httpx.AsyncClient, model: str, target: int) -> dict[str, Any]:
    """How many words of ``TEXT`` make a ``target``-token prompt on this server.

    Also the warm-up: the first request to a server may pay for lazy initialisation.
    """
    words = max(1, round(target * WORDS_PER_TOKEN))
    measured = await _prompt_tokens(http, model, prompt(0, words))
    if measured is None:
        return {
            "target_tokens": target,
            "measured_tokens": None,
            "words": words,
            "method": "estimate",
        }
    for _ in range(PROBES - 1):
        if measured == target:
            break
        guess = max(1, round(words * target / measured))
        tokens = await _prompt_tokens(http, model, prompt(0, guess))
        if tokens is None or abs(tokens - target) >= abs(measured - target):
            break  # no closer: the tokenizer's granularity, keep what we have
        words, measured = guess, tokens
    return {"target_tokens": target, "measured_tokens": measured, "words": words, "method": "probe"}


async def _prompt_tokens(http: httpx.AsyncClient, model: str, text: str) -> int | None:
    body = {"model": model, "prompt": text, "max_tokens": 1}
    usage = (await _get_json(http, "POST", "/completions", json=body)).get("usage") or {}
    tokens = usage.get("prompt_tokens")
    return tokens if isinstance(tokens, int) and tokens > 0 else None


def request_body(settings: BenchSettings, model: str, text: str) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": text,
        "max_tokens": settings.max_tokens,
        "min_tokens": settings.max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **settings.extra_body,
    }


async def one_request(http: httpx.AsyncClient, body: dict[str, Any]) -> Sample:
    """Send one streamed completion and time its text chunks. Never raises on a server error:
    a failed request is a sample too."""
    meter = TokenMeter()
    try:
        await _stream(http, body, meter)
    except (httpx.HTTPError, ServerError, ValueError) as exc:
        meter.finish()
        return Sample(ok=False, latency_s=meter.duration_s, error=str(exc) or type(exc).__name__)
    meter.finish()
    return Sample(
        ok=True,
        latency_s=meter.duration_s,
        output_tokens=meter.tokens,
        ttft_s=meter.ttft_s,
        gaps_s=meter.gaps_s,
        usage_reported=meter.usage_tokens is not None,
    )


async def _stream(http: httpx.AsyncClient, body: dict[str, Any], meter: TokenMeter) -> None:
    async with http.stream("POST", "/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise ServerError(response.status_code, error_message(response.text))
        async for data in _adata(response):
            if data == DONE:
                return
            chunk = json.loads(data)
            if "error" in chunk:
                raise ServerError(200, error_message(data))
            meter.observe(chunk)


async def _adata(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        for data in sse_data([line]):
            yield data


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


async def run_level(
    http: httpx.AsyncClient,
    settings: BenchSettings,
    model: str,
    words: int,
    level: Level,
    numbers: count[int],
    advance: Callable[[], None],
) -> float:
    """Run one level; return its wall time (first send to last completion). ``numbers``
    numbers prompts across levels, so no prompt repeats from one level to the next;
    ``advance()`` moves the progress bar."""
    if level.rate is not None:
        return await _open_loop(http, settings, model, words, level, numbers, advance)
    started = time.perf_counter()
    deadline = started + settings.duration_s
    sent = count()

    async def worker() -> None:
        while next(sent) < settings.requests and time.perf_counter() < deadline:
            body = request_body(settings, model, prompt(next(numbers), words))
            level.samples.append(await one_request(http, body))
            advance()

    await asyncio.gather(*(worker() for _ in range(level.concurrency)))
    return time.perf_counter() - started


async def _open_loop(
    http: httpx.AsyncClient,
    settings: BenchSettings,
    model: str,
    words: int,
    level: Level,
    numbers: count[int],
    advance: Callable[[], None],
) -> float:
    assert level.rate is not None
    started = time.perf_counter()
    in_flight = 0

    async def send(body: dict[str, Any]) -> None:
        nonlocal in_flight
        in_flight += 1
        level.concurrency = max(level.concurrency, in_flight)  # the peak, for the record
        try:
            level.samples.append(await one_request(http, body))
        finally:
            in_flight -= 1
        advance()

    tasks = []
    for at in arrival_times(level.rate, settings.requests):
        if at > settings.duration_s:
            break
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = request_body(settings, model, prompt(next(numbers), words))
        tasks.append(asyncio.create_task(send(body)))
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
) -> dict[str, Any]:
    """The whole benchmark: what ``bench.report.document`` wraps into the result file.
    ``transport`` is for tests (a scripted server); by default, the network. Prompts are
    numbered from ``first_prompt`` (prompt 0 calibrates); ``next_prompt`` in the result
    is where a following sweep on the same server should start, to reuse no prefix."""
    async with _client(settings, transport) as http:
        model = await pick_model(http, settings)
        calibration = await calibrate(http, model, settings.prompt_tokens)
        numbers = count(first_prompt)
        results = []
        for level in _levels(settings):
            what = f"rate {level.rate:g}/s" if level.rate else f"concurrency {level.concurrency}"
            task = progress.add_task(what, total=settings.requests)
            wall = await run_level(
                http,
                settings,
                model,
                calibration["words"],
                level,
                numbers,
                partial(progress.advance, task),
            )
            progress.update(task, total=len(level.samples), completed=len(level.samples))
            results.append(summarize(level.concurrency, level.samples, wall, rate=level.rate))
    return {
        "model": model,
        "prompt": calibration,
        "results": results,
        "next_prompt": next(numbers),
    }
