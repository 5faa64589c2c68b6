"""Speculative decoding through the API (issue 21): on the llama.cpp engine it is on by
default and counted in ``/metrics``; on the vLLM engine ``--speculative-config`` reaches
vLLM, whose CPU build runs n-gram speculation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, vllm_serving
from tether.bench.compare.quoting import quoting_prompt

pytestmark = pytest.mark.e2e

SPEC_CONFIG = '{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}'


def quote(url: str, max_tokens: int = 96) -> dict[str, object]:
    body = {"prompt": quoting_prompt(0), "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(f"{url}/v1/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def counter(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(rf"^{re.escape(name)}_total{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    return sum(float(value) for value in found)


def test_an_answer_that_quotes_its_prompt_is_drafted(tether_server: RunningServer) -> None:
    before = counter(tether_server.url, "tether:spec_decode_num_accepted_tokens")
    answer = quote(tether_server.url)
    text = answer["choices"][0]["text"]  # type: ignore[index]
    assert "Annual report of the Northfield Community Library" in text
    accepted = counter(tether_server.url, "tether:spec_decode_num_accepted_tokens") - before
    assert accepted > 20
    assert counter(tether_server.url, "tether:spec_decode_num_draft_tokens") >= accepted


@pytest.fixture(scope="module")
def vllm_ngram_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from vllm_serving(
        tmp_path_factory, "tether-vllm-ngram", "--speculative-config", SPEC_CONFIG
    )


def test_vllm_runs_its_own_ngram_speculation(vllm_ngram_server: RunningServer) -> None:
    answer = quote(vllm_ngram_server.url)
    text = answer["choices"][0]["text"]  # type: ignore[index]
    assert "Annual report of the Northfield Community Library" in text
    assert "SpeculativeConfig(method='ngram'" in vllm_ngram_server.log_text()
