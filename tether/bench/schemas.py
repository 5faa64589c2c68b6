"""``tether bench schemas``: how much of real-world JSON Schema a server enforces.

    tether bench schemas --url http://127.0.0.1:8000 [--concurrency 8] [--max-tokens 384] \\
        [--source Kubernetes --source Snowplow] [--limit 5] [--id ID] [--skip ID] \\
        [--json FILE]

Every schema of the corpus (``bench.corpus``: a sample of JSONSchemaBench) goes to the server
as one chat completion: ``response_format`` ``{"type": "json_schema", "json_schema":
{"name": "s", "schema": ..., "strict": true}}``, a one-line user message, ``temperature: 0``,
``--max-tokens``; ``--concurrency`` requests at a time. Each answer gets one outcome:

    refused     HTTP 400: the server will not enforce the schema (its message is kept)
    valid       the answer ended by itself and is JSON that the schema accepts
    invalid     the answer ended by itself (``stop``) but is not JSON, or the schema rejects it
                (the most relevant validation error is kept)
    cut         ``max_tokens`` ran out first (``length``)
    error       anything else: another HTTP status, no answer, another finish reason
    bad_schema  the schema fails its own metaschema (not sent), or the checker cannot apply
                it (a ``$ref`` it cannot resolve locally, a regex Python cannot compile)

Answers are checked with the ``jsonschema`` package, by the validator of the schema's own
``$schema`` draft (2020-12 when it names none) with that draft's format checker (a format
whose checker needs an optional package passes unchecked). Remote ``$ref``s are never
fetched. The shares leave ``bad_schema`` out: compiled = not refused / counted, valid = valid
/ counted, valid of completed = valid / (valid + invalid).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from tether.bench.completions import pick_model
from tether.bench.corpus import CORPUS, SchemaCase, load
from tether.client.api import TIMEOUT, ClientError, base_url, error_message

PROMPT = "Reply with one JSON object that fits the required schema."
OUTCOMES = ("refused", "valid", "invalid", "cut", "error", "bad_schema")
MESSAGE_CHARS = 300  # a validation error quotes the instance; keep the file readable


@dataclass(frozen=True)
class SchemaBenchSettings:
    """One coverage run: where, which schemas, how hard."""

    url: str
    model: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    max_tokens: int = 384
    corpus: Path = CORPUS
    sources: tuple[str, ...] = ()
    limit: int | None = None
    timeout_s: float = 900.0  # for one answer: a big schema decodes slowly on a busy CPU
    ids: tuple[str, ...] = ()  # only these schemas
    skip: tuple[str, ...] = ()  # never these (one that crashes a server, say)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_tokens < 1 or self.timeout_s <= 0:
            raise ValueError("--concurrency, --max-tokens and --timeout must be positive")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be positive")

    def command(self) -> str:
        """The command that reproduces this run (never with the API key)."""
        parts = ["tether bench schemas", f"--url {self.url}"]
        parts += [f"--concurrency {self.concurrency}", f"--max-tokens {self.max_tokens}"]
        if self.timeout_s != SchemaBenchSettings.timeout_s:
            parts.append(f"--timeout {self.timeout_s:g}")
        if self.model:
            parts.append(f"--model {self.model}")
        if self.corpus != CORPUS:
            parts.append(f"--corpus {self.corpus}")
        parts += [f"--source {source}" for source in self.sources]
        if self.limit is not None:
            parts.append(f"--limit {self.limit}")
        parts += [f"--id {id_}" for id_ in self.ids]
        parts += [f"--skip {id_}" for id_ in self.skip]
        return " ".join(parts)

    def cases(self) -> list[SchemaCase]:
        """The corpus's cases this run sends."""
        cases = load(self.corpus, self.sources, self.limit)
        unknown = set(self.ids) - {case.id for case in cases}
        if unknown:
            raise ClientError(f"no schema {', '.join(sorted(unknown))} in {self.corpus}")
        return [c for c in cases if (not self.ids or c.id in self.ids) and c.id not in self.skip]


@dataclass(frozen=True)
class Result:
    """What became of one schema."""

    id: str
    source: str
    outcome: str  # one of OUTCOMES
    message: str | None = None  # the refusal, the validation error, what went wrong
    status: int | None = None  # the HTTP status, when there was an answer
    finish_reason: str | None = None
    output: str | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None


# -- checking an answer ----------------------------------------------------------------


class BadSchema(Exception):
    """The checker cannot judge answers against this schema."""


def validator(schema: dict[str, Any]) -> Any:
    """A ``jsonschema`` validator for ``schema``: its own draft's class, that draft's format
    checker, and a registry that never fetches a remote ``$ref``. Raises ``BadSchema`` when
    the schema fails its metaschema."""
    import jsonschema
    import referencing
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadSchema(f"not a valid {cls.__name__} schema: {_short(exc.message)}") from exc
    # An empty registry (with the drafts' metaschemas, which jsonschema adds) fails to
    # retrieve any other URI, where jsonschema's default registry would fetch it over HTTP.
    registry: referencing.Registry[Any] = referencing.Registry()
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def check(check_with: Any, text: str) -> str | None:
    """Why ``text`` is not an instance of the validator's schema; ``None`` when it is.
    Raises ``BadSchema`` when the validator itself cannot apply the schema."""
    import referencing.exceptions
    from jsonschema.exceptions import best_match

    try:
        instance = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    try:
        error = best_match(check_with.iter_errors(instance))
    except referencing.exceptions.Unresolvable as exc:
        raise BadSchema(f"cannot resolve $ref: {exc}") from exc
    except Exception as exc:  # a pattern Python's re rejects, a checker's own failure
        raise BadSchema(f"the checker failed: {type(exc).__name__}: {exc}") from exc
    if error is None:
        return None
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    return _short(f"at {where}: {error.message}")


def classify(case: SchemaCase, check_with: Any, status: int, body: str) -> Result:
    """The outcome of one answer: ``status`` and ``body`` as the server sent them."""
    if status == 400:
        return Result(case.id, case.source, "refused", _short(error_message(body)), status)
    if status != 200:
        return Result(case.id, case.source, "error", _short(error_message(body)), status)
    try:
        payload = json.loads(body)
        choice = payload["choices"][0]
        text, finish = choice["message"]["content"], choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Result(case.id, case.source, "error", f"unreadable answer: {exc!r}", status)
    usage = payload.get("usage") or {}
    seen = {"status": status, "finish_reason": finish, "output": text}
    seen["completion_tokens"] = usage.get("completion_tokens")
    if finish == "length":
        return Result(case.id, case.source, "cut", **seen)
    if finish not in ("stop", "eos") or not isinstance(text, str):
        return Result(case.id, case.source, "error", f"finish_reason {finish!r}", **seen)
    try:
        why = check(check_with, text)
    except BadSchema as exc:
        return Result(case.id, case.source, "bad_schema", str(exc), **seen)
    outcome = "valid" if why is None else "invalid"
    return Result(case.id, case.source, outcome, why, **seen)


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


# -- the run ---------------------------------------------------------------------------


def request_body(model: str, schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": schema, "strict": True},
        },
        "temperature": 0,
        "max_tokens": max_tokens,
    }


async def one_schema(
    http: httpx.AsyncClient, model: str, case: SchemaCase, max_tokens: int
) -> Result:
    """Send one schema and classify the answer. Never raises on a server's failure."""
    try:
        check_with = validator(case.schema)
    except BadSchema as exc:
        return Result(case.id, case.source, "bad_schema", str(exc))
    started = time.perf_counter()
    try:
        response = await http.post(
            "/chat/completions", json=request_body(model, case.schema, max_tokens)
        )
    except httpx.HTTPError as exc:
        message = f"no answer: {str(exc) or type(exc).__name__}"
        if isinstance(exc, httpx.TimeoutException):
            message = f"no answer in {http.timeout.read:g} s ({type(exc).__name__})"
        return Result(case.id, case.source, "error", message, latency_s=_since(started))
    result = classify(case, check_with, response.status_code, response.text)
    return Result(**{**asdict(result), "latency_s": _since(started)})


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


async def run(
    settings: SchemaBenchSettings,
    cases: list[SchemaCase],
    advance: Callable[[], None] = lambda: None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Every case against the server; the result document. ``transport`` is for tests."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    limits = httpx.Limits(max_connections=settings.concurrency + 1)
    gate = asyncio.Semaphore(settings.concurrency)
    async with httpx.AsyncClient(
        base_url=base_url(settings.url) + "/v1",
        headers=headers,
        timeout=httpx.Timeout(TIMEOUT.connect, read=settings.timeout_s),
        limits=limits,
        transport=transport,
    ) as http:
        model = await pick_model(http, settings.model)

        async def one(case: SchemaCase) -> Result:
            async with gate:
                result = await one_schema(http, model, case, settings.max_tokens)
            advance()
            return result

        started = time.perf_counter()
        results = await asyncio.gather(*(one(case) for case in cases))
        wall_s = time.perf_counter() - started
    return document(settings, model, list(results), wall_s)


# -- the numbers -----------------------------------------------------------------------


def counts(results: list[Result]) -> dict[str, int]:
    """How many of ``results`` had each outcome, and ``total``."""
    out = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        out[r.outcome] += 1
    return {"total": len(results), **out}


def shares(tally: dict[str, int]) -> dict[str, float | None]:
    """The shares of a tally (``counts``), ``bad_schema`` left out; ``None`` when empty."""
    counted = tally["total"] - tally["bad_schema"]
    completed = tally["valid"] + tally["invalid"]

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "compiled": share(counted - tally["refused"], counted),
        "valid": share(tally["valid"], counted),
        "valid_of_completed": share(tally["valid"], completed),
        "refused": share(tally["refused"], counted),
    }


def summarize(results: list[Result]) -> dict[str, Any]:
    """The tally and shares of the whole run and of each source."""
    sources = list(dict.fromkeys(r.source for r in results))
    by_source = {}
    for source in sources:
        tally = counts([r for r in results if r.source == source])
        by_source[source] = {**tally, "shares": shares(tally)}
    tally = counts(results)
    return {**tally, "counted": tally["total"] - tally["bad_schema"], "shares": shares(tally),
            "by_source": by_source}  # fmt: skip


def document(
    settings: SchemaBenchSettings, model: str, results: list[Result], wall_s: float
) -> dict[str, Any]:
    """The ``--json`` file: the run's context, its summary and every schema's result."""
    from tether.bench.report import machine

    return {
        "schema": 1,
        "kind": "schemas",
        "url": settings.url,
        "model": model,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": settings.command(),
        "machine": machine(),
        "settings": {
            "concurrency": settings.concurrency,
            "max_tokens": settings.max_tokens,
            "corpus": str(settings.corpus),
            "sources": list(settings.sources),
            "limit": settings.limit,
            "timeout_s": settings.timeout_s,
            "ids": list(settings.ids),
            "skip": list(settings.skip),
            "prompt": PROMPT,
        },
        "wall_s": round(wall_s, 1),
        "summary": summarize(results),
        "results": [asdict(r) for r in results],
    }
