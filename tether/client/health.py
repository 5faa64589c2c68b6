"""Waiting for a server process to answer ``GET /health`` with 200: how ``tether bench
compare``, the soak command and the tests' fixtures know that a server they started is up."""

from __future__ import annotations

import subprocess
import time

import httpx

from tether.client.api import ClientError

POLL_S = 0.2


class NotHealthy(ClientError):
    """The process exited, or ``/health`` did not answer 200 in time. The message is the
    reason, worded to follow the server's name: ``"exited with 3"``."""


def wait_healthy(process: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    """Return once ``{url}/health`` answers 200; raise ``NotHealthy`` if ``process`` exits
    first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotHealthy(f"exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(POLL_S)
    raise NotHealthy(f"was not healthy after {timeout_s:g} s")
