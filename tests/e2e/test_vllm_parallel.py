"""Tensor parallelism on the vLLM engine: the model split over two workers (one per core,
``VLLM_CPU_OMP_THREADS_BIND='0|1'``) gives the same greedy tokens as one worker."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, vllm_serving
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PROMPTS = ["The capital of France is", "Once upon a time, a lighthouse keeper"]


@pytest.fixture(scope="module")
def tp2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from vllm_serving(
        tmp_path_factory,
        "tether-vllm-tp2",
        "--tensor-parallel-size",
        "2",
        "--distributed-executor-backend",
        "mp",
        env={"VLLM_CPU_OMP_THREADS_BIND": "0|1"},
    )


def greedy_ids(server: Server, prompt: str) -> list[int]:
    body = {
        "model": server.model,
        "prompt": prompt,
        "max_tokens": 16,
        "temperature": 0,
        "logprobs": 1,
        "ignore_eos": True,
    }
    response = httpx.post(f"{server.v1}/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["choices"][0]["logprobs"]["token_ids"]
    return ids


def test_tensor_parallel_2_gives_the_same_greedy_tokens(
    tp2_server: RunningServer, tether_vllm_server: RunningServer
) -> None:
    for prompt in PROMPTS:
        split = greedy_ids(tp2_server, prompt)
        assert len(split) == 16
        assert split == greedy_ids(tether_vllm_server, prompt)
    assert "vllm" in tp2_server.log_text() and "tensor_parallel_size=2" in tp2_server.log_text()
