"""Per-key rate limits against a real server, as the SDKs see them (issue 9).

The limit window is a real minute, so the retry test waits for it (up to 60 s): the SDKs'
own retry, honouring ``retry-after``, is the behaviour under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import together

from tests.conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("tether-limited")
    limits = ["--rate-limit-rpm", "2", "--rate-limit-tpm", "100000"]
    proc, server = start_server(tmp, *limits, "--api-key", "k1", "--api-key", "k2")
    yield server
    stop_server(proc)


def openai_client(server: RunningServer, key: str, retries: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=key, max_retries=retries, timeout=120)


def test_a_successful_response_carries_the_limit_headers(limited_server: RunningServer) -> None:
    with openai_client(limited_server, "k2", 0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=limited_server.model, messages=MESSAGES, max_tokens=2
        )

    assert raw.headers["x-ratelimit-limit"] == "2"
    assert raw.headers["x-ratelimit-remaining"] == "1"
    assert int(raw.headers["x-ratelimit-reset"]) >= 1
    assert raw.headers["x-tokenlimit-limit"] == "100000"
    assert int(raw.headers["x-tokenlimit-remaining"]) <= 100000
    assert raw.parse().choices[0].message.content is not None


def test_over_the_limit_sdks_get_429_and_a_retry_after_it_succeeds(
    limited_server: RunningServer,
) -> None:
    with openai_client(limited_server, "k1", 0) as client:
        for _ in range(2):
            client.chat.completions.create(
                model=limited_server.model, messages=MESSAGES, max_tokens=2
            )
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(
                model=limited_server.model, messages=MESSAGES, max_tokens=2
            )
    with (
        together.Together(
            base_url=limited_server.url, api_key="k1", max_retries=0, timeout=60
        ) as tog,
        pytest.raises(together.RateLimitError) as raised_together,
    ):
        tog.chat.completions.create(model=limited_server.model, messages=MESSAGES, max_tokens=2)

    error = raised.value
    assert error.status_code == 429
    assert error.code == "rate_limited"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining"] == "0"
    assert raised_together.value.status_code == 429

    # The SDK's own retry waits retry-after (the rest of the minute) and then gets through.
    with openai_client(limited_server, "k1", 2) as client:
        answer = client.chat.completions.create(
            model=limited_server.model, messages=MESSAGES, max_tokens=2
        )
    assert answer.choices[0].finish_reason in {"stop", "length"}
