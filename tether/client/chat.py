"""``tether chat``: a streaming chat in the terminal, one conversation per run.

Each answer streams token by token and is followed by a line with its length, tokens/s (over
the whole answer, from sending the request to the last token) and time to first token. The
whole history goes with every request, so the model sees the conversation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console

from tether.client.api import Client, ClientError, TokenMeter

QUIT = frozenset({"/exit", "/quit"})
RESET = "/reset"
HELP = "Type a message. /reset starts over; /exit or Ctrl-D quits; Ctrl-C stops an answer."


class ChatSession:
    """One conversation with one model: the history, and a streamed answer per turn."""

    def __init__(
        self,
        client: Client,
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.client = client
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.out = out
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def ask(self, text: str) -> TokenMeter:
        """Send ``text``, write the answer to ``out`` as it arrives, keep both in the history.

        An interrupted answer (Ctrl-C) stays in the history as far as the user saw it.
        """
        self.messages.append({"role": "user", "content": text})
        meter = TokenMeter()
        answer = ""
        completed = False
        try:
            for chunk in self.client.stream("/chat/completions", self._body()):
                piece = meter.observe(chunk)
                answer += piece
                self.out.write(piece)
                self.out.flush()
            completed = True
        finally:
            if completed or answer:
                self.messages.append({"role": "assistant", "content": answer})
            else:
                self.messages.pop()  # nothing was said: forget the question too
        meter.finish()
        return meter

    def _body(self) -> dict[str, Any]:
        # include_usage makes vLLM and llama.cpp report the token count too; Tether reports
        # it on the last chunk either way (wire-contract.md "Chat chunk").
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body


def stats_line(meter: TokenMeter) -> str:
    ttft = f", first token {meter.ttft_s * 1000:.0f} ms" if meter.ttft_s is not None else ""
    return f"[{meter.tokens} tokens, {meter.tokens_per_s:.1f} tokens/s{ttft}]"


def run_chat(session: ChatSession, read_line: Callable[[], str], interactive: bool) -> None:
    """The read–answer loop, until ``/exit`` or end of input. ``read_line`` raises
    ``EOFError`` at the end, like ``input``."""
    console = Console(file=session.out, highlight=False)
    if interactive:
        banner = f"Chatting with {session.model} at {session.client.url}. {HELP}"
        console.print(banner, style="dim", markup=False)
    while True:
        try:
            line = read_line().strip()
        except (EOFError, KeyboardInterrupt):
            session.out.write("\n" if interactive else "")
            return
        if line in QUIT:
            return
        if line == RESET:
            session.reset()
            console.print("[history cleared]", style="dim", markup=False)
        elif line:
            _answer(session, console, line)


def _answer(session: ChatSession, console: Console, line: str) -> None:
    try:
        meter = session.ask(line)
    except KeyboardInterrupt:
        console.print("\n[interrupted]", style="dim", markup=False)
        return
    except ClientError as exc:
        # One failed turn (say, the history outgrew the context) need not end the chat.
        print(f"\nerror: {exc}", file=sys.stderr)
        return
    session.out.write("\n")
    console.print(stats_line(meter), style="dim", markup=False)
