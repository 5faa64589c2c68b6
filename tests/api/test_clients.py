"""The real clients against a real uvicorn serving the app over the fake engine.

The unit tests check the bytes; these check that the SDKs the contract names accept them:
``openai`` (sync and async), ``together`` 3.x with both base-URL styles, ``requests`` +
``sseclient-py``, and that a client hanging up mid-stream aborts the engine request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import requests
import sseclient
import together
import uvicorn

from tests.api.fake_engine import MODEL_ID, FakeEngine, Script
from tests.e2e.wire import assemble_tool_call
from tether.api.app import create_app
from tether.config import ServerConfig

USER = [{"role": "user", "content": "Hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeEngine]]:
    engine = FakeEngine()
    app = create_app(engine, ServerConfig(keepalive_s=1.0), chat=engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", engine
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def server(served: tuple[str, FakeEngine]) -> Iterator[tuple[str, FakeEngine]]:
    base, engine = served
    yield base, engine
    engine.default = Script(["Hello", " world", "!"])
    engine.scripts.clear()
    engine.aborted.clear()


def openai_client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, timeout=10)


def test_openai_chat_stream_with_usage(server: tuple[str, FakeEngine]) -> None:
    client = openai_client(server[0])
    chunks = list(
        client.chat.completions.create(
            model=MODEL_ID, messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world!"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 33


def test_openai_non_stream_models_and_errors(server: tuple[str, FakeEngine]) -> None:
    client = openai_client(server[0])
    answer = client.chat.completions.create(model=MODEL_ID, messages=USER)
    assert answer.choices[0].message.content == "Hello world!"
    assert [model.id for model in client.models.list()] == [MODEL_ID]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="other", messages=USER)
    assert raised.value.code == "model_not_available"


def test_openai_streamed_tool_call(server: tuple[str, FakeEngine]) -> None:
    base, engine = server
    engine.default = Script(
        ['<tool_call>{"name": "get_weather", ', '"arguments": {"city": "Paris"}}</tool_call>']
    )
    stream = openai_client(base).chat.completions.create(
        model=MODEL_ID, messages=USER, tools=TOOLS, stream=True
    )
    name, arguments, finish = assemble_tool_call(stream)
    assert (name, arguments, finish) == ("get_weather", '{"city":"Paris"}', "tool_calls")


async def test_async_openai_reads_to_eof(server: tuple[str, FakeEngine]) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server[0]}/v1", api_key="k", max_retries=0, timeout=10)
    stream = await client.chat.completions.create(model=MODEL_ID, messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    await client.close()
    assert text == "Hello world!"


@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_together_both_base_url_styles(server: tuple[str, FakeEngine], suffix: str) -> None:
    client = together.Together(base_url=server[0] + suffix, api_key="k", max_retries=0)
    stream = client.chat.completions.create(model=MODEL_ID, messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello world!"
    answer = client.chat.completions.create(model=MODEL_ID, messages=USER)
    assert answer.choices[0].message.content == "Hello world!"


def test_requests_and_sseclient_on_legacy_inference(server: tuple[str, FakeEngine]) -> None:
    body = {"model": MODEL_ID, "prompt": "p", "stream_tokens": True}
    with requests.post(f"{server[0]}/inference", json=body, stream=True, timeout=10) as response:
        data = [event.data for event in sseclient.SSEClient(response).events()]
    assert data[-1] == "[DONE]"
    assert '"generated_text":"Hello world!"' in data[-2]


async def test_hanging_up_mid_stream_aborts_in_the_engine(server: tuple[str, FakeEngine]) -> None:
    base, engine = server
    engine.default = Script(["x"] * 200, delay_s=0.02)
    body = {"model": MODEL_ID, "messages": USER, "stream": True}
    url = f"{base}/v1/chat/completions"
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url, json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                break
    for _ in range(100):
        if engine.aborted:
            break
        await asyncio.sleep(0.02)
    assert len(engine.aborted) == 1
