"""Every error status with the contract's body, before and instead of any generation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import CHAT, COMPLETIONS, chat_body, drive
from tests.api.fake_engine import FakeEngine, Script
from tether.api.app import create_app
from tether.config import ServerConfig
from tether.engine.errors import EngineDeadError, InvalidRequestError, QueueFullError


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, object]:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"id", "error"}
    assert body["id"] == response.headers["x-request-id"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CHAT, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_request")
    assert error["type"] == "invalid_request_error"
    assert "JSON" in str(error["message"])


async def test_body_that_is_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(CHAT, json=[1, 2]), 400, "invalid_request")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -1),
        ("top_p", 0),
        ("n", 129),
        ("n", 0),
        ("presence_penalty", 2.5),
        ("frequency_penalty", -3),
        ("logprobs", 21),
        ("top_logprobs", 21),
        ("max_tokens", 0),
        ("logit_bias", {"abc": 1}),
        ("context_length_exceeded_behavior", "explode"),
        ("tool_choice", "sometimes"),
        ("stop", 5),
    ],
)
async def test_out_of_range_field_is_400_naming_it(
    client: httpx.AsyncClient, engine: FakeEngine, field: str, value: object
) -> None:
    error = assert_error(
        await client.post(CHAT, json=chat_body(**{field: value})), 400, "invalid_request"
    )
    assert error["param"] == field
    assert field in str(error["message"])
    assert engine.requests == []


async def test_missing_messages_is_400(client: httpx.AsyncClient, engine: FakeEngine) -> None:
    error = assert_error(
        await client.post(CHAT, json={"model": engine.model_id}), 400, "invalid_request"
    )
    assert error["param"] == "messages"


async def test_bad_role_is_400(client: httpx.AsyncClient) -> None:
    body = {"model": "google/gemma-3-270m", "messages": [{"role": "robot", "content": "x"}]}
    error = assert_error(await client.post(CHAT, json=body), 400, "invalid_request")
    assert error["param"] == "messages"


async def test_unknown_model_is_400_model_not_available(client: httpx.AsyncClient) -> None:
    body = {**chat_body(), "model": "meta-llama/Llama-3-70b"}
    error = assert_error(await client.post(CHAT, json=body), 400, "model_not_available")
    assert error["param"] == "model"


async def test_engine_invalid_request_keeps_its_param(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.generate_error = InvalidRequestError("min_p: must be in [0, 1]", param="min_p")
    error = assert_error(await client.post(CHAT, json=chat_body()), 400, "invalid_request")
    assert error["param"] == "min_p"


async def test_queue_full_is_503_with_retry_after(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.generate_error = QueueFullError("queue full")
    response = await client.post(CHAT, json=chat_body(stream=True))
    error = assert_error(response, 503, "overloaded")
    assert error["type"] == "server_error"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"].startswith("application/json")  # not a stream


async def test_unexpected_exception_is_500_without_traceback(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.generate_error = RuntimeError("secret internals /home/x/.py line 3")
    response = await client.post(CHAT, json=chat_body())
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_dead_engine_is_500(engine: FakeEngine, client: httpx.AsyncClient) -> None:
    engine.generate_error = EngineDeadError("loop died")
    assert_error(
        await client.post(COMPLETIONS, json={"model": engine.model_id, "prompt": "p"}),
        500,
        "internal_error",
    )


async def test_413_from_content_length(engine: FakeEngine) -> None:
    app = create_app(engine, ServerConfig(max_body_bytes=1024), chat=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post(CHAT, json=chat_body("x" * 2000))
    assert_error(response, 413, "payload_too_large")
    assert engine.requests == []


async def test_413_from_counted_bytes_without_content_length(engine: FakeEngine) -> None:
    app = create_app(engine, ServerConfig(max_body_bytes=1024), chat=engine)

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"model": "google/gemma-3-270m", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}]}'

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post(CHAT, content=chunked())
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_unknown_route_is_404_with_contract_body(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/v1/nope"), 404, "not_found")


async def test_non_streaming_client_disconnect_aborts(engine: FakeEngine, app: FastAPI) -> None:
    engine.default = Script(["slow"] * 20, delay_s=0.05)
    await drive(app, CHAT, chat_body(), hang_up_after_s=0.1)
    assert engine.aborted == [engine.requests[0].request_id]


async def test_not_ready_is_503_with_retry_after(
    engine: FakeEngine, client: httpx.AsyncClient
) -> None:
    engine.ready = False
    response = await client.post(CHAT, json=chat_body())
    assert_error(response, 503, "overloaded")
    assert response.headers["retry-after"]
    assert engine.requests == [] and engine.templates == []


NON_FINITE = [
    # (path, body with NaN / Infinity written as Python's json writes them, the field named)
    ("/inference", '{"model": "m", "prompt": "Hi", "max_tokens": 1, "temperature": Infinity}',
     "temperature"),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "top_p": NaN}',
     "top_p"),
    (COMPLETIONS, '{"model": "m", "prompt": "Hi", "logit_bias": {"5": -Infinity}}', "logit_bias"),
    (COMPLETIONS, '{"model": "m", "prompt": "Hi", "min_p": 1e400}', "min_p"),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "response_format": '
     '{"type": "json_schema", "json_schema": {"schema": {"maximum": NaN}}}}', "response_format"),
    ("/v1/responses", '{"model": "m", "input": "Hi", "temperature": Infinity}', "temperature"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "raw", "field"), NON_FINITE)
async def test_a_non_finite_number_anywhere_is_400_naming_its_field(
    client: httpx.AsyncClient, engine: FakeEngine, path: str, raw: str, field: str
) -> None:
    # Issue 22: an infinite temperature reached the legacy endpoint, whose answer echoes its
    # arguments and then could not be written as JSON (a 500).
    response = await client.post(path, content=raw, headers={"content-type": "application/json"})

    error = assert_error(response, 400, "invalid_request")
    assert error["param"] == field
    assert str(error["message"]).startswith(field)
    assert engine.requests == []
