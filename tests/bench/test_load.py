"""``bench.load`` against a scripted OpenAI-compatible server (httpx's MockTransport).

The scripted server behaves like llama-cpp-python's: OpenAI's list form for ``/v1/models``,
no ``usage`` in streams, one text chunk per token. Its tokenizer makes 4 tokens of 3 words.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rich.progress import Progress

from tether.bench.load import BenchSettings, arrival_times, sweep
from tether.bench.prompts import WORDS, prompt
from tether.bench.report import document
from tether.client.api import ServerError


class ScriptedServer:
    def __init__(self, *, fail_every: int = 0, delay_s: float = 0.0) -> None:
        self.fail_every = fail_every
        self.delay_s = delay_s
        self.streamed: list[dict[str, Any]] = []
        self.probes: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "scripted"}]})
        body = json.loads(request.content)
        if not body.get("stream"):
            self.probes.append(body)
            tokens = math.ceil(len(body["prompt"].split()) * 4 / 3)
            return httpx.Response(
                200, json={"choices": [{"text": "x"}], "usage": {"prompt_tokens": tokens}}
            )
        self.streamed.append(body)
        if self.fail_every and len(self.streamed) % self.fail_every == 0:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        return httpx.Response(200, content=self.events(body["max_tokens"]))

    async def events(self, tokens: int) -> AsyncIterator[bytes]:
        for i in range(tokens):
            await asyncio.sleep(self.delay_s)
            yield f'data: {{"choices":[{{"text":" w{i}","index":0}}]}}\n\n'.encode()
        yield b"data: [DONE]\n\n"


def run(server: ScriptedServer, **fields: Any) -> tuple[BenchSettings, dict[str, Any]]:
    settings = BenchSettings(**{"url": "http://scripted:1/v1", **fields})
    with Progress(disable=True) as progress:
        measured = asyncio.run(sweep(settings, progress, server.transport()))
    return settings, measured


def test_every_request_asks_for_exactly_max_tokens_of_output() -> None:
    server = ScriptedServer()
    _, measured = run(
        server,
        concurrency=(1, 3),
        requests=3,
        prompt_tokens=40,
        max_tokens=8,
        extra_body={"top_k": 1},
    )
    assert measured["model"] == "scripted"
    for body in server.streamed:
        assert body["model"] == "scripted"
        assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"]) == (8, 8, True)
        assert body["stream"] is True and body["top_k"] == 1
    assert [level["output_tokens"] for level in measured["results"]] == [24, 24]
    assert {level["tokens_counted_by"] for level in measured["results"]} == {"chunks"}


def test_the_prompt_is_sized_from_the_servers_own_token_count() -> None:
    # 0.75 words per token guesses 38 words, which the server counts as 51 tokens; scaled
    # down to 37 words, it is 50.
    _, measured = run(ScriptedServer(), concurrency=(1,), requests=1, prompt_tokens=50)
    assert measured["prompt"] == {
        "target_tokens": 50,
        "measured_tokens": 50,
        "words": 37,
        "method": "probe",
    }


def test_no_two_requests_share_a_prompt_prefix() -> None:
    server = ScriptedServer()
    run(server, concurrency=(1, 2), requests=4, prompt_tokens=16, max_tokens=1)
    starts = {tuple(body["prompt"].split()[:2]) for body in server.streamed}
    assert len(starts) == len(server.streamed) == 8


def test_prompts_are_windows_on_one_text_that_wraps_around() -> None:
    assert prompt(1, 5).split() == prompt(0, 12).split()[7:12]
    assert prompt(0, len(WORDS) + 3).split()[-3:] == WORDS[:3]


def test_failed_requests_are_counted_not_fatal() -> None:
    _, measured = run(ScriptedServer(fail_every=2), concurrency=(1,), requests=4, max_tokens=2)
    level = measured["results"][0]
    assert (level["completed"], level["failed"]) == (2, 2)
    assert level["errors"] == ["2 x overloaded (HTTP 503)"]


def test_the_duration_bounds_a_level() -> None:
    server = ScriptedServer(delay_s=0.01)
    _, measured = run(server, concurrency=(1,), requests=1000, max_tokens=5, duration_s=0.2)
    level = measured["results"][0]
    assert 1 <= level["requests"] < 1000
    assert level["failed"] == 0


def test_the_api_key_is_sent_but_never_written_down() -> None:
    server = ScriptedServer()
    settings, measured = run(
        server, concurrency=(1,), requests=1, max_tokens=1, api_key="sk-secret"
    )
    assert {h["authorization"] for h in server.headers} == {"Bearer sk-secret"}
    assert "sk-secret" not in json.dumps(document(settings, measured))


def test_the_result_file_names_the_command_that_reproduces_it() -> None:
    settings = BenchSettings(url="http://h:8000", concurrency=(1, 4), requests=8, name="my srv")
    assert settings.command() == (
        "tether bench --url http://h:8000 --concurrency 1,4 --requests 8 --duration 120 "
        "--prompt-tokens 128 --max-tokens 128 --name 'my srv'"
    )
    assert BenchSettings(url="http://h:8000/v1").label == "h:8000"


def test_a_server_refusing_the_key_stops_the_run() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "Invalid API key"}})

    settings = BenchSettings(url="http://h:1", concurrency=(1,), requests=1)
    with Progress(disable=True) as progress, pytest.raises(ServerError, match="HTTP 401"):
        asyncio.run(sweep(settings, progress, httpx.MockTransport(refuse)))


@pytest.mark.parametrize("fields", [{"concurrency": (0,)}, {"requests": 0}, {"duration_s": 0}])
def test_nonsense_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BenchSettings(url="http://h:1", **fields)


def test_prompts_stay_distinct_after_every_start_was_used() -> None:
    n = 3 * len(WORDS)
    assert len({prompt(i, 12) for i in range(n)}) == n
    assert prompt(len(WORDS) + 1, 6).startswith("(1) ")


def test_open_loop_arrivals_are_poisson_at_the_rate_and_the_same_every_time() -> None:
    times = arrival_times(2.0, 2000)
    assert times[0] == 0.0 and times == sorted(times)
    assert times == arrival_times(2.0, 2000)  # a fixed seed: every server gets this traffic
    assert 2000 / times[-1] == pytest.approx(2.0, rel=0.1)


def test_an_open_loop_sends_at_arrival_times_without_waiting_for_answers() -> None:
    # 8 requests at 40/s arrive within about 0.2 s; each answer takes about 0.25 s, so a
    # closed loop of one would take 2 s and never have two in flight.
    server = ScriptedServer(delay_s=0.05)
    settings, measured = run(server, rates=(40.0,), requests=8, max_tokens=5)
    level = measured["results"][0]
    assert (level["mode"], level["rate"], level["completed"]) == ("open", 40.0, 8)
    assert level["concurrency"] >= 2  # the peak in flight
    assert level["duration_s"] < 1.5
    assert "--rate 40 " in settings.command()


def test_sweeps_can_continue_the_prompt_numbering() -> None:
    server = ScriptedServer()
    settings = BenchSettings(url="http://scripted:1/v1", concurrency=(1,), requests=3, max_tokens=1)
    with Progress(disable=True) as progress:
        first = asyncio.run(sweep(settings, progress, server.transport()))
        asyncio.run(sweep(settings, progress, server.transport(), first["next_prompt"]))
    assert first["next_prompt"] == 4
    assert len({body["prompt"] for body in server.streamed}) == 6


def test_a_sweep_given_an_earlier_calibration_probes_no_more() -> None:
    # bench compare sizes the prompt once per server and round, not before every load.
    server = ScriptedServer()
    settings = BenchSettings(
        url="http://scripted:1/v1", concurrency=(1,), requests=1, prompt_tokens=50, max_tokens=1
    )
    with Progress(disable=True) as progress:
        first = asyncio.run(sweep(settings, progress, server.transport()))
        probes = len(server.probes)
        second = asyncio.run(
            sweep(settings, progress, server.transport(), first["next_prompt"], first["prompt"])
        )
        longer = BenchSettings(**{**settings.__dict__, "prompt_tokens": 80})
        asyncio.run(sweep(longer, progress, server.transport(), 9, first["prompt"]))
    assert probes == 2  # 38 words (51 tokens), then 37 (50)
    assert second["prompt"] == first["prompt"]
    assert [len(body["prompt"].split()) for body in server.streamed[:2]] == [37, 37]
    assert len(server.probes) > probes  # a calibration for another length is not reused
