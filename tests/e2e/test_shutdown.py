"""Issue 9: SIGTERM drains the server. Streams in flight finish, or, past ``--drain-timeout``,
end with the ``server_shutdown`` error event and ``data: [DONE]``; new requests and
``/health`` get 503 meanwhile; the process exits 0 without a traceback.

Each test starts (and signals) its own ``tether serve``."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.e2e.wire import chat_body, data_events

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
EXIT_TIMEOUT_S = 30.0


class StreamReader(threading.Thread):
    """Reads one streamed chat completion to the end, whatever that end is."""

    def __init__(self, server: RunningServer, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.body = chat_body(
            server.model, "Tell me a story.", max_tokens=max_tokens, ignore_eos=True, stream=True
        )
        self.url = server.url + CHAT
        self.raw = b""
        self.first_byte = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=120) as client,
                client.stream("POST", self.url, json=self.body) as response,
            ):
                for part in response.iter_raw():
                    self.raw += part
                    if b"data: {" in self.raw:
                        self.first_byte.set()
        except BaseException as exc:  # a cut connection is what this test looks for
            self.error = exc
        finally:
            self.first_byte.set()

    def last_two_events(self) -> list[str]:
        assert self.error is None, f"the stream was cut: {self.error!r}"
        return data_events(self.raw)[-2:]


@pytest.fixture
def draining_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], RunningServer]]:
    """Two sequences and a short drain: of four long streams, two decode and two wait."""
    proc, server = start_server(tmp_path, "--max-seqs", "2", "--drain-timeout", "2")
    yield proc, server
    if proc.poll() is None:
        stop_server(proc)


def test_sigterm_past_the_drain_timeout_ends_every_stream_with_the_error_and_done(
    draining_server: tuple[subprocess.Popen[bytes], RunningServer],
) -> None:
    proc, server = draining_server
    readers = [StreamReader(server, max_tokens=1500) for _ in range(4)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 60
    while sum(r.first_byte.is_set() for r in readers) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(r.first_byte.is_set() for r in readers) == 2, "two decode, two wait"

    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = httpx.post(server.url + CHAT, json=chat_body(server.model), timeout=10)
    health = httpx.get(server.url + "/health", timeout=10)
    for reader in readers:
        reader.join(60)
    code = proc.wait(EXIT_TIMEOUT_S)

    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "server_shutdown"
    assert health.status_code == 503 and health.json() == {"status": "draining"}
    for reader in readers:  # decoding and waiting alike
        error, done = reader.last_two_events()
        assert done == "[DONE]"
        assert json.loads(error)["error"]["code"] == "server_shutdown"
    assert code == 0
    assert "Traceback" not in server.log_text()


def test_sigterm_lets_running_streams_finish_within_the_drain_timeout(tmp_path: Path) -> None:
    proc, server = start_server(tmp_path, "--drain-timeout", "60")
    try:
        readers = [StreamReader(server, max_tokens=48) for _ in range(3)]
        for reader in readers:
            reader.start()
        assert all(r.first_byte.wait(60) for r in readers)

        proc.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(60)
        code = proc.wait(EXIT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            stop_server(proc)

    for reader in readers:
        finish, done = reader.last_two_events()
        assert done == "[DONE]"
        assert json.loads(finish)["choices"][0]["finish_reason"] == "length"
    assert code == 0
    assert "Traceback" not in server.log_text()
