"""Error statuses and bodies from a real server (wire-contract.md "Errors", "Auth").

Every error body is ``{"id", "error": {"message", "type", "param", "code"}}`` and never
carries a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from together import Together

from tests.e2e.conftest import AUTH_KEYS, Server
from tests.e2e.wire import chat_body

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
FOUR_MIB = 4 * 1024 * 1024


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def error_of(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """The ``error`` object, after checking the status, the body's shape and its code."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert set(body) == {"id", "error"}
    assert body["id"] == response.headers["x-request-id"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code
    return dict(error)


def test_malformed_json_is_400_invalid_request(http: httpx.Client) -> None:
    response = http.post(
        CHAT, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"}
    )

    error = error_of(response, 400, "invalid_request")
    assert error["type"] == "invalid_request_error"


def test_negative_temperature_is_400_naming_the_field(http: httpx.Client, server: Server) -> None:
    response = http.post(CHAT, json=chat_body(server.model, temperature=-1, max_tokens=4))

    error = error_of(response, 400, "invalid_request")
    assert error["param"] == "temperature"
    assert "temperature" in error["message"]


def test_logit_bias_outside_the_vocabulary_is_400_naming_it(
    http: httpx.Client, server: Server
) -> None:
    body = chat_body(server.model, max_tokens=2, logit_bias={"262144": -100, "5": 1})
    response = http.post(CHAT, json=body)

    error = error_of(response, 400, "invalid_request")
    assert error["param"] == "logit_bias"
    assert "262144" in error["message"]


def test_max_completion_tokens_is_honoured(http: httpx.Client, server: Server) -> None:
    body = chat_body(server.model, max_completion_tokens=3, ignore_eos=True, temperature=0)
    response = http.post(CHAT, json=body)

    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 3


def test_unknown_model_is_400_model_not_available(http: httpx.Client) -> None:
    response = http.post(CHAT, json=chat_body("no-such/model", max_tokens=4))

    error = error_of(response, 400, "model_not_available")
    assert error["param"] == "model"
    assert "no-such/model" in error["message"]


def test_unknown_model_raises_bad_request_in_openai(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(
            model="no-such/model", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )

    assert raised.value.code == "model_not_available"


def test_prompt_over_the_context_is_400_context_length_exceeded(
    http: httpx.Client, server: Server
) -> None:
    prompt = "hello " * 2500  # ~2500 tokens, over --ctx-size 2048
    body = {"model": server.model, "prompt": prompt, "max_tokens": 4}
    response = http.post("/v1/completions", json=body)

    error_of(response, 400, "context_length_exceeded")


def test_prompt_plus_max_tokens_over_the_context_is_400(http: httpx.Client, server: Server) -> None:
    response = http.post(CHAT, json=chat_body(server.model, max_tokens=2048))

    error = error_of(response, 400, "context_length_exceeded")
    assert error["param"] == "max_tokens"
    assert "2048" in error["message"]


def test_body_over_4_mib_is_413(http: httpx.Client, server: Server) -> None:
    body = json.dumps(chat_body(server.model, "x" * FOUR_MIB, max_tokens=4)).encode()
    response = http.post(CHAT, content=body, headers={"content-type": "application/json"})

    error_of(response, 413, "payload_too_large")


def test_chunked_body_over_4_mib_is_413(http: httpx.Client, server: Server) -> None:
    body = json.dumps(chat_body(server.model, "x" * FOUR_MIB, max_tokens=4)).encode()

    def pieces() -> Iterator[bytes]:  # an iterator body has no content-length: chunked
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = http.post(CHAT, content=pieces(), headers={"content-type": "application/json"})

    error_of(response, 413, "payload_too_large")


def test_unknown_route_is_404_in_the_contract_body(http: httpx.Client) -> None:
    error_of(http.get("/v1/no-such-route"), 404, "not_found")


# --- auth (a second server started with --api-key test-key-1 --api-key test-key-2) --------


@pytest.fixture
def auth_http(auth_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, timeout=60) as client:
        yield client


def test_missing_key_is_401(auth_http: httpx.Client, auth_server: Server) -> None:
    response = auth_http.post(CHAT, json=chat_body(auth_server.model, max_tokens=4))

    error_of(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/inference"])
def test_wrong_key_is_401_everywhere(auth_http: httpx.Client, path: str) -> None:
    headers = {"authorization": "Bearer test-key-3"}
    response = auth_http.request("POST" if path == "/inference" else "GET", path, headers=headers)

    error_of(response, 401, "invalid_api_key")


@pytest.mark.parametrize("key", AUTH_KEYS)
def test_each_configured_key_is_accepted(auth_server: Server, key: str) -> None:
    with Together(base_url=auth_server.url, api_key=key, max_retries=0, timeout=60) as client:
        answer = client.chat.completions.create(
            model=auth_server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )

    assert answer.choices[0].finish_reason in {"stop", "length"}


def test_wrong_key_raises_authentication_error_in_openai(auth_server: Server) -> None:
    with (
        openai.OpenAI(base_url=auth_server.v1, api_key="nope", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_health_is_open_without_a_key(auth_http: httpx.Client) -> None:
    response = auth_http.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
