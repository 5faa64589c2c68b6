"""Prometheus metrics under vLLM's names with a ``tether:`` prefix, so vLLM dashboards work.

Histograms and counters are fed per request by ``RequestTimer``; the running / waiting
gauges are read from ``engine.stats()`` at scrape time. Each app owns its registry (tests
build many apps in one process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tether.engine.request import EngineStats, StepOutput

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ("model_name",)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 20, 40, 80, 160, 640)
_ITL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10)
_LONG_BUCKETS = (0.1, 0.3, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120, 240, 480, 960, 1920, 7680)


# The gauges and counters read from ``engine.stats()`` at scrape time: (kind, name, help,
# value).
_ENGINE_STATS: tuple[
    tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, Callable[[EngineStats], float]],
    ...,
] = (
    (
        GaugeMetricFamily,
        "tether:num_requests_running",
        "Sequences decoding now.",
        lambda stats: stats.running,
    ),
    (
        GaugeMetricFamily,
        "tether:num_requests_waiting",
        "Requests waiting for a slot.",
        lambda stats: stats.waiting,
    ),
    (
        GaugeMetricFamily,
        "tether:live_samplers",
        "llama.cpp sampler objects allocated (grows without bound only if they leak).",
        lambda stats: stats.live_samplers,
    ),
    (
        CounterMetricFamily,
        "tether:engine_decode_steps",
        "Engine steps that only decoded (no prompt chunk in the batch).",
        lambda stats: stats.decode_steps.steps,
    ),
    (
        CounterMetricFamily,
        "tether:engine_decode_step_seconds",
        "Wall time of those steps, from scheduling to their outputs.",
        lambda stats: stats.decode_steps.step_s,
    ),
    (
        CounterMetricFamily,
        "tether:engine_decode_kernel_seconds",
        "The part of those steps spent inside llama_decode.",
        lambda stats: stats.decode_steps.kernel_s,
    ),
    (
        CounterMetricFamily,
        "tether:spec_decode_num_drafts",
        "Speculative decoding on the llama.cpp engine: drafts verified (one per sequence "
        "and step that drafted).",
        lambda stats: stats.speculation.drafts,
    ),
    (
        CounterMetricFamily,
        "tether:spec_decode_num_draft_tokens",
        "Speculative decoding on the llama.cpp engine: tokens drafted.",
        lambda stats: stats.speculation.draft_tokens,
    ),
    (
        CounterMetricFamily,
        "tether:spec_decode_num_accepted_tokens",
        "Speculative decoding on the llama.cpp engine: drafted tokens the sampler accepted.",
        lambda stats: stats.speculation.accepted_tokens,
    ),
)


class _EngineStatsCollector(Collector):
    """Each loaded model's engine stats, and every configured model's loaded state."""

    def __init__(self, models: Callable[[], Iterable[tuple[str, EngineStats | None]]]) -> None:
        self._models = models

    def collect(self) -> Iterable[Metric]:
        models = list(self._models())
        for kind, name, help_text, value in _ENGINE_STATS:
            family = kind(name, help_text, labels=_LABELS)
            for model, stats in models:
                if stats is not None:
                    family.add_metric([model], value(stats))
            yield family
        loaded = GaugeMetricFamily(
            "tether:model_loaded", "1 while the model is loaded, else 0.", labels=_LABELS
        )
        for model, stats in models:
            loaded.add_metric([model], 0 if stats is None else 1)
        yield loaded


class ModelInstruments:
    """The per-request instruments of one model (children labelled with its name)."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.ttft = metrics.ttft_family.labels(model)
        self.itl = metrics.itl_family.labels(model)
        self.e2e = metrics.e2e_family.labels(model)
        self.queue = metrics.queue_family.labels(model)
        self.prompt_tokens = metrics.prompt_tokens_family.labels(model)
        self.generation_tokens = metrics.generation_tokens_family.labels(model)


class Metrics:
    """The instruments of one app; ``models`` lists each configured model with its engine's
    stats (``None`` while it is not loaded). Also the pool's events: loads, failed loads
    and unloads, per model."""

    def __init__(self, models: Callable[[], Iterable[tuple[str, EngineStats | None]]]) -> None:
        self.registry = CollectorRegistry()
        self.ttft_family = self._histogram(
            "tether:time_to_first_token_seconds", "Time to first token.", _TTFT_BUCKETS
        )
        self.itl_family = self._histogram(
            "tether:inter_token_latency_seconds", "Time per output token.", _ITL_BUCKETS
        )
        self.e2e_family = self._histogram(
            "tether:e2e_request_latency_seconds", "End-to-end latency.", _LONG_BUCKETS
        )
        self.queue_family = self._histogram(
            "tether:request_queue_time_seconds", "Time waiting in the queue.", _LONG_BUCKETS
        )
        self.prompt_tokens_family = Counter(
            "tether:prompt_tokens", "Prompt tokens.", _LABELS, registry=self.registry
        )
        self.generation_tokens_family = Counter(
            "tether:generation_tokens", "Generated tokens.", _LABELS, registry=self.registry
        )
        self._loads = Counter(
            "tether:model_loads", "Models loaded.", _LABELS, registry=self.registry
        )
        self._load_failures = Counter(
            "tether:model_load_failures", "Loads that failed.", _LABELS, registry=self.registry
        )
        self._unloads = Counter(
            "tether:model_unloads",
            "Models unloaded: evicted (to make room), ttl (idle too long), stopped (the "
            "management API), failed (its engine died; it loads again when asked for).",
            (*_LABELS, "reason"),
            registry=self.registry,
        )
        self._load_seconds = self._histogram(
            "tether:model_load_seconds", "Time to load a model.", _LONG_BUCKETS
        )
        self._models: dict[str, ModelInstruments] = {}
        self.registry.register(_EngineStatsCollector(models))

    def _histogram(self, name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, _LABELS, buckets=buckets, registry=self.registry)

    def model(self, name: str) -> ModelInstruments:
        instruments = self._models.get(name)
        if instruments is None:
            instruments = self._models[name] = ModelInstruments(self, name)
        return instruments

    def timer(self) -> RequestTimer:
        return RequestTimer(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- the pool's events (tether.pool.pool.PoolEvents) -------------------------------------

    def loaded(self, model: str, seconds: float) -> None:
        self._loads.labels(model).inc()
        self._load_seconds.labels(model).observe(seconds)

    def load_failed(self, model: str) -> None:
        self._load_failures.labels(model).inc()

    def unloaded(self, model: str, reason: str) -> None:
        self._unloads.labels(model, reason).inc()


class RequestTimer:
    """Observes one request's outputs; started when its HTTP request arrived."""

    def __init__(self, metrics: Metrics) -> None:
        self._all = metrics
        self.model = ""  # set once the request's model is known (before any output)
        self._start = time.perf_counter()
        self._last: dict[int, float] = {}
        self._prompt_tokens = 0
        self._completion_tokens = 0
        # Where this request's tokens are charged as they come (the token rate limit).
        self.charge: Callable[[int], None] | None = None

    @property
    def _metrics(self) -> ModelInstruments:
        return self._all.model(self.model)

    def on_output(self, out: StepOutput) -> None:
        now = time.perf_counter()
        if self.charge is not None:
            self.charge(len(out.tokens) + (0 if self._last else out.prompt_tokens))
        last = self._last.get(out.index)
        if last is None:
            if not self._last:
                self._metrics.ttft.observe(now - self._start)
                self._metrics.queue.observe(out.queue_time_s)
        elif out.tokens:
            self._metrics.itl.observe((now - last) / len(out.tokens))
        self._last[out.index] = now
        if out.finish_reason is not None:
            self._prompt_tokens = out.prompt_tokens
            self._completion_tokens += out.completion_tokens

    def finish(self) -> None:
        """The request completed (not called for aborted requests)."""
        self._metrics.e2e.observe(time.perf_counter() - self._start)
        self._metrics.prompt_tokens.inc(self._prompt_tokens)
        self._metrics.generation_tokens.inc(self._completion_tokens)
