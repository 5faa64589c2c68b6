"""Several models in one ``tether serve`` (issue 20), on real GGUFs derived from the
embedded one: a copy, another quantization, a LoRA adapter and a corrupt file; two models
streaming at once, aliases through both SDKs, the together SDK stopping and starting a
model, eviction under ``--max-loaded-models 1`` (never of a busy model), the TTL, and
SIGTERM draining streams on two models."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from together import Together

from tests import gguf_files
from tests.conftest import VLLM_MODEL, RunningServer, start_server, stop_server, vllm_available
from tests.e2e.wire import data_events, json_chunks

pytestmark = pytest.mark.e2e

ALIAS = "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
SMALL = ("--max-seqs", "4", "--ctx-size", "512")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("models")
    proc, server = start_server(
        folder,
        *SMALL,
        "--model",
        f"gemma={gguf_files.copy_as(folder, 'gemma')}",
        "--model",
        f"q4={gguf_files.requantized(folder)}",
        "--model",
        f"broken={gguf_files.corrupt(folder)}",
        "--lora",
        f"tuned={gguf_files.lora_adapter(folder)}@gemma",
        "--alias",
        f"{ALIAS}=gemma",
        "--default-model",
        "gemma",
    )
    try:
        yield server
    finally:
        stop_server(proc)


def metric(server: RunningServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_models_stream_at_once(models: RunningServer) -> None:
    async def both() -> list[tuple[str, str, str | None]]:
        async with openai.AsyncOpenAI(base_url=models.v1, api_key="x", max_retries=0) as client:

            async def stream(model: str) -> tuple[str, str, str | None]:
                text, finish, served = "", None, ""
                chunks = await client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "Name three rivers."}],
                    max_tokens=24,
                    temperature=0,
                    stream=True,
                )
                async for chunk in chunks:
                    served = chunk.model
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                        finish = chunk.choices[0].finish_reason or finish
                return served, text, finish

            return list(await asyncio.gather(stream("gemma"), stream("q4")))

    (gemma, gemma_text, gemma_end), (q4, q4_text, q4_end) = asyncio.run(both())
    assert (gemma, q4) == ("gemma", "q4")
    assert gemma_text and q4_text
    assert gemma_end in ("stop", "length") and q4_end in ("stop", "length")


def test_an_alias_answers_through_both_sdks(models: RunningServer) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    with Together(base_url=models.url, api_key="x", max_retries=0) as together:
        answer = together.chat.completions.create(model=ALIAS, messages=messages, max_tokens=4)
        assert answer.model == "gemma"
    with openai.OpenAI(base_url=models.v1, api_key="x", max_retries=0) as client:
        listed = [model.id for model in client.models.list()]
        assert {"gemma", "q4", "broken", "tuned", ALIAS} <= set(listed)
        completion = client.completions.create(model=ALIAS, prompt="One", max_tokens=2)
        assert completion.model == "gemma"


def test_a_corrupt_gguf_fails_alone(models: RunningServer) -> None:
    body = {"model": "broken", "prompt": "x", "max_tokens": 2}
    refused = httpx.post(f"{models.v1}/completions", json=body, timeout=60)
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "'broken' could not be loaded" in error["message"]
    served = httpx.post(f"{models.v1}/completions", json={**body, "model": "gemma"}, timeout=60)
    assert served.status_code == 200
    assert metric(models, "tether:model_load_failures_total", model_name="broken") >= 1
    assert httpx.get(f"{models.url}/health", timeout=10).status_code == 200


def first_token(server: RunningServer, model: str) -> tuple[str, float]:
    """The greedy first token of a fixed prompt, and its logprob."""
    body = {
        "model": model,
        "prompt": "The capital of France is",
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": 1,
    }
    answer = httpx.post(f"{server.v1}/completions", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    logprobs = answer.json()["choices"][0]["logprobs"]
    return logprobs["tokens"][0], logprobs["token_logprobs"][0]


def test_a_lora_model_answers_with_its_adapter(models: RunningServer) -> None:
    base_token, base_logprob = first_token(models, "gemma")
    tuned_token, tuned_logprob = first_token(models, "tuned")
    assert (tuned_token, round(tuned_logprob, 3)) != (base_token, round(base_logprob, 3))
    assert first_token(models, "gemma") == (base_token, base_logprob)  # the base is untouched


def test_the_together_sdk_stops_and_starts_a_model(models: RunningServer) -> None:
    with Together(base_url=models.url, api_key="x", project_id="local", max_retries=0) as client:
        names = [endpoint.name for endpoint in client.endpoints.list()]
        assert {"gemma", "q4", "broken", "tuned"} <= set(names)
        client.endpoints.deployments.update(
            "local", endpoint_id="q4", autoscaling={"min_replicas": 1, "max_replicas": 1}
        )
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            deployment = client.endpoints.deployments.retrieve("local", endpoint_id="q4")
            state = deployment.status.state
            if state == "DEPLOYMENT_STATE_READY":
                break
            time.sleep(0.2)
        assert state == "DEPLOYMENT_STATE_READY"
        stopped = client.endpoints.deployments.update(
            "local", endpoint_id="q4", autoscaling={"min_replicas": 0, "max_replicas": 0}
        )
        assert stopped.status.state == "DEPLOYMENT_STATE_STOPPED"
    assert metric(models, "tether:model_loaded", model_name="q4") == 0


# -- one model resident at a time ------------------------------------------------------------


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("lru")
    a, b = gguf_files.copy_as(folder, "a"), gguf_files.copy_as(folder, "b")
    proc, server = start_server(
        folder,
        *SMALL,
        "--model",
        f"a={a}",
        "--model",
        f"b={b}",
        "--max-loaded-models",
        "1",
    )
    try:
        yield server
    finally:
        stop_server(proc)


class LongStream(threading.Thread):
    """A streamed completion of ``tokens`` tokens (``ignore_eos``), read to its end in a
    thread: its raw bytes, when its first event came, and when it ended."""

    def __init__(self, server: RunningServer, model: str, tokens: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.v1}/completions"
        self.body = {
            "model": model,
            "prompt": "Once upon a time",
            "max_tokens": tokens,
            "ignore_eos": True,
            "temperature": 0,
            "stream": True,
        }
        self.raw = bytearray()
        self.started = threading.Event()
        self.ended_at = 0.0

    def run(self) -> None:
        with (
            httpx.Client(timeout=120) as client,
            client.stream("POST", self.url, json=self.body) as response,
        ):
            for part in response.iter_raw():
                self.raw.extend(part)
                if b"data: {" in self.raw:
                    self.started.set()
        self.ended_at = time.monotonic()

    def chunks(self) -> list[dict[str, Any]]:
        """Its chunks, after checking that it ended with ``[DONE]`` and no error."""
        assert data_events(bytes(self.raw))[-1] == "[DONE]", self.body["model"]
        chunks = json_chunks(bytes(self.raw))
        assert not any("error" in chunk for chunk in chunks)
        return chunks


def complete(server: RunningServer, model: str, max_tokens: int = 2) -> httpx.Response:
    body = {"model": model, "prompt": "Once", "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(f"{server.v1}/completions", json=body, timeout=120)


def test_the_least_recently_used_model_is_evicted(one_at_a_time: RunningServer) -> None:
    server = one_at_a_time
    before = {
        m: metric(server, "tether:model_unloads_total", model_name=m, reason="evicted")
        for m in "ab"
    }
    for model in ("a", "b", "a"):
        assert complete(server, model).status_code == 200
    after = {
        m: metric(server, "tether:model_unloads_total", model_name=m, reason="evicted")
        for m in "ab"
    }
    assert (after["a"] - before["a"], after["b"] - before["b"]) == (1, 1)
    assert metric(server, "tether:model_loaded", model_name="a") == 1
    assert metric(server, "tether:model_loaded", model_name="b") == 0


def test_a_busy_model_finishes_its_stream_before_it_is_evicted(
    one_at_a_time: RunningServer,
) -> None:
    server = one_at_a_time
    assert complete(server, "a").status_code == 200  # a is resident
    stream = LongStream(server, "a", 64)
    stream.start()
    assert stream.started.wait(60)
    other = complete(server, "b")
    answered_at = time.monotonic()
    stream.join(120)
    assert other.status_code == 200
    chunks = stream.chunks()
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert 0 < stream.ended_at <= answered_at  # b waited for a's stream


# -- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_drains_streams_on_two_models(tmp_path: Path) -> None:
    a, b = gguf_files.copy_as(tmp_path, "a"), gguf_files.requantized(tmp_path, "b")
    proc, server = start_server(
        tmp_path, *SMALL, "--model", f"a={a}", "--model", f"b={b}", "--drain-timeout", "60"
    )
    streams = [LongStream(server, model, 48) for model in ("a", "b")]
    try:
        for stream in streams:
            stream.start()
        assert all(stream.started.wait(120) for stream in streams)
        proc.send_signal(signal.SIGTERM)
        for stream in streams:
            stream.join(120)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            stop_server(proc)
    for stream in streams:
        assert stream.chunks()[-1]["choices"][0]["finish_reason"] == "length"
    assert "Traceback" not in server.log_text()


# -- both engines in one server, and vLLM's multi-LoRA -------------------------------------


@pytest.mark.skipif(not vllm_available(), reason="make vllm builds .venv-vllm")
def test_one_server_mixes_both_engines_and_a_vllm_lora(tmp_path: Path) -> None:
    gguf = gguf_files.copy_as(tmp_path, "small")
    adapter = gguf_files.peft_adapter(tmp_path)
    (tmp_path / "models.toml").write_text(
        f"""
[models.gemma]
path = "{VLLM_MODEL}"

[models.tuned]
lora = "{adapter}"
base = "gemma"

[models.small]
engine = "llamacpp"
path = "{gguf}"
""",
        encoding="utf-8",
    )
    proc, server = start_server(
        tmp_path, "--models-file", str(tmp_path / "models.toml"), engine="vllm"
    )
    try:
        base = first_token(server, "gemma")
        tuned = first_token(server, "tuned")
        small = first_token(server, "small")  # the llama.cpp engine, in the same process
        assert (tuned[0], round(tuned[1], 3)) != (base[0], round(base[1], 3))
        assert small[0] == base[0]  # the same model on both engines: the same greedy token
        cards = {c["id"]: c for c in httpx.get(f"{server.v1}/models", timeout=30).json()}
        assert {cards[m]["state"] for m in ("gemma", "tuned", "small")} == {"STARTED"}
    finally:
        stop_server(proc)
