"""End-to-end fixtures: the suite's real ``tether serve`` (``tests/conftest.py``) under the
names the e2e tests use, and SDK clients that are closed after each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from together import Together

from tests.conftest import AUTH_KEYS, RunningServer

Server = RunningServer
__all__ = ["AUTH_KEYS", "ENGINES", "Server", "on_engines"]


# The engines an end-to-end module runs on: ``pytestmark = on_engines(...)`` parametrizes
# its ``server`` (and so every client fixture) over them.
ENGINES = ("llamacpp", "vllm")


def on_engines(*engines: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("server", engines or ENGINES, indirect=True)


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> RunningServer:
    """The suite's shared server: llama.cpp, or vLLM where a module parametrizes it."""
    engine = getattr(request, "param", "llamacpp")
    if engine == "vllm":
        return request.getfixturevalue("tether_vllm_server")
    return request.getfixturevalue("tether_server")


@pytest.fixture(scope="session")
def auth_server(tether_auth_server: RunningServer) -> RunningServer:
    return tether_auth_server


# --- SDK clients, closed after each test (an unclosed socket is a ResourceWarning, an error) --


@pytest.fixture
def openai_client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
async def async_openai_client(server: Server) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=server.v1, api_key="unused", max_retries=0, timeout=120
    ) as client:
        yield client


@pytest.fixture
def together_client(server: Server) -> Iterator[Together]:
    with Together(base_url=server.url, api_key="unused", max_retries=0, timeout=60) as client:
        yield client
