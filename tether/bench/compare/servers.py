"""The two server processes of a round: their command lines, started and stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tether.bench import llama_server
from tether.bench.compare.settings import CompareSettings
from tether.client.api import ClientError
from tether.client.health import NotHealthy, wait_healthy

READY_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(name: str, argv: list[str], port: int, log_path: Path) -> Iterator[str]:
    """Start a server process, wait until ``/health`` says 200, yield its URL, stop it."""
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(process, url, READY_TIMEOUT_S)
            yield url
        except NotHealthy as exc:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise ClientError(f"{name} {exc}:\n" + "\n".join(tail)) from exc
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tether_argv(s: CompareSettings, model: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "tether", "serve",
        "--port", str(port),
        "--model", model,
        "--threads", str(s.n_threads),
        "--max-seqs", str(s.slots),
        "--ctx-size", str(s.ctx_per_slot),
        "--batch-tokens", str(s.batch),
        "--no-store",
        "--log-level", "warning",
    ]  # fmt: skip


def llama_argv(s: CompareSettings, binary: Path, model: str, port: int) -> list[str]:
    return llama_server.command(
        binary,
        model,
        port,
        threads=s.n_threads,
        slots=s.slots,
        ctx_per_slot=s.ctx_per_slot,
        batch=s.batch,
    )
