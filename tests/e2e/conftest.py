"""End-to-end fixtures: a real ``tether serve`` subprocess on the real default model.

``server`` is one open server for the whole session; ``auth_server`` is a second one that
requires ``--api-key``, started only when a test asks for it (session fixtures are lazy).
Each writes its log to a temp file; a server that does not answer ``GET /health`` with 200
in time fails the test with the log's tail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from together import Together

from tether.config import DEFAULT_MODEL_ID

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
AUTH_KEYS = ("test-key-1", "test-key-2")
# llama.cpp's decode threads spin at their barriers: on a small shared machine (CI, a laptop
# running the test clients too) one thread per core makes each step wait on a descheduled
# spinner, and a 16-token request takes tens of seconds instead of one. The wire behaviour
# under test does not depend on the thread count; TETHER_E2E_THREADS=0 uses the default.
THREADS = os.environ.get("TETHER_E2E_THREADS", "1")


@dataclass(frozen=True)
class Server:
    """A running ``tether serve``: where to reach it and where it logs."""

    url: str
    model: str
    log: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    """The caller's environment without ``TETHER_*``: only the flags below configure it."""
    return {name: value for name, value in os.environ.items() if not name.startswith("TETHER_")}


def _wait_healthy(proc: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tether serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"tether serve not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_server(tmp: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", DEFAULT_MODEL_ID, tmp / "tether.log")
    command = [sys.executable, "-m", "tether", "serve", "--port", str(port)]
    command += ["--ctx-size", "2048", "--max-seqs", "16", "--threads", THREADS, *extra]
    with server.log.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=REPO, env=_child_env(), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(proc, server)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from run_server(tmp_path_factory.mktemp("tether"))


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    keys = [arg for key in AUTH_KEYS for arg in ("--api-key", key)]
    yield from run_server(tmp_path_factory.mktemp("tether-auth"), *keys)


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
