"""Stream chunks: chat and completions chunks in Together's shape (``ChunkBuilder``), a
tool call's deltas, and the legacy ``/inference`` stream (``InferenceChunkBuilder``);
wire-contract.md "Chat chunk", "Completions chunk", "Legacy /inference stream".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.api.wire.objects import (
    LogprobStyle,
    Usage,
    finite,
    openai_logprobs_object,
    token_object,
)
from tether.engine.request import TokenInfo


class ChunkBuilder:
    """Chunks of one chat or completions stream; the envelope is fixed once per request."""

    def __init__(
        self,
        request_id: str,
        model: str,
        created: int,
        *,
        chat: bool,
        logprobs: LogprobStyle = "none",
    ) -> None:
        self._id = request_id
        self._object = "chat.completion.chunk" if chat else "completion.chunk"
        self._created = created
        self._model = model
        self._chat = chat
        self._logprobs = logprobs

    def _delta(self, content: str | None, token_id: int | None) -> dict[str, Any]:
        # ``role`` on every chunk: ``together`` declares it required.
        delta: dict[str, Any] = {"role": "assistant", "content": content, "token_id": token_id}
        if self._chat:
            delta["tool_calls"] = None
        return delta

    def _envelope(self, choices: list[dict[str, Any]], usage_: Usage | None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": self._object,
            "created": self._created,
            "model": self._model,
            "choices": choices,
            "usage": usage_,
        }

    def text(
        self, index: int, text: str, tokens: Sequence[TokenInfo], *, reasoning: bool = False
    ) -> dict[str, Any]:
        """A text piece, named after the last of the ``tokens`` that released it.

        ``choices[].logprobs`` is ``null`` unless the request asked (a float there breaks
        LangChain's streaming): Together's float and ``top_logprobs`` dict for an integer
        ``logprobs``, OpenAI's ``{"content": [...]}`` for ``logprobs: true`` (the openai SDK's
        stream helper reads that). ``token.logprob`` always has the value (wire-contract.md
        "Chat chunk"). A ``reasoning`` piece goes in ``delta.reasoning`` (and
        ``reasoning_content``, the older name), never in ``content``.
        """
        token = tokens[-1] if tokens else None
        token_id = None if token is None else token.id
        delta = self._delta(None if reasoning else text, token_id)
        if reasoning:
            delta["reasoning"] = delta["reasoning_content"] = text
        choice: dict[str, Any] = {
            "index": index,
            "text": "" if reasoning else text,
            "logprobs": None,
            "finish_reason": None,
            "seed": None,
            "delta": delta,
        }
        if self._logprobs == "openai":
            choice["logprobs"] = openai_logprobs_object(tokens)
        elif self._logprobs == "together" and token is not None:
            choice["logprobs"] = finite(token.logprob)
            if token.top_logprobs:
                choice["top_logprobs"] = {a.text: finite(a.logprob) for a in token.top_logprobs}
        chunk = self._envelope([choice], None)
        chunk["token"] = token_object(token)
        return chunk

    def finish(self, index: int, reason: str, seed: int, usage_: Usage | None) -> dict[str, Any]:
        choice = {
            "index": index,
            "text": "",
            "logprobs": None,
            "finish_reason": reason,
            "seed": seed,
            "delta": self._delta("", None),
        }
        chunk = self._envelope([choice], usage_)
        if not self._chat:
            # together 3.x and TypeScript declare both at the top of a completion.chunk.
            chunk["finish_reason"], chunk["seed"] = reason, seed
        return chunk

    def usage_only(self, usage_: Usage) -> dict[str, Any]:
        """The separate ``choices: []`` chunk of ``stream_options.include_usage``."""
        return self._envelope([], usage_)

    def tool_calls(self, index: int, calls: list[dict[str, Any]]) -> dict[str, Any]:
        choice = {
            "index": index,
            "text": "",
            "logprobs": None,
            "finish_reason": None,
            "seed": None,
            "delta": {"role": "assistant", "content": None, "token_id": None, "tool_calls": calls},
        }
        return self._envelope([choice], None)


def tool_call_start(call_index: int, call_id: str, name: str) -> dict[str, Any]:
    """The first delta of a streamed call carries ``id``, ``type`` and ``function.name``."""
    return {
        "index": call_index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }


def tool_call_arguments(call_index: int, arguments: str) -> dict[str, Any]:
    return {"index": call_index, "function": {"arguments": arguments}}


class InferenceChunkBuilder:
    """Chunks of the legacy ``/inference`` stream (wire-contract.md "Legacy /inference stream")."""

    RESULT_TYPE = "language-model-inference"

    def __init__(self, request_id: str) -> None:
        self._id = request_id

    def text(self, index: int, text: str, token: TokenInfo | None) -> dict[str, Any]:
        return {
            "id": self._id,
            "choices": [{"text": text, "index": index, "finish_reason": None}],
            "result_type": self.RESULT_TYPE,
            "token": token_object(token),
            "generated_text": None,
            "details": None,
            "usage": None,
        }

    def finish(
        self,
        index: int,
        reason: str,
        seed: int,
        generated: tuple[str, int],
        usage_: Usage | None,
    ) -> dict[str, Any]:
        generated_text, generated_tokens = generated
        return {
            "id": self._id,
            "choices": [{"text": "", "index": index, "finish_reason": reason}],
            "result_type": self.RESULT_TYPE,
            "generated_text": generated_text,
            "details": {
                "finish_reason": reason,
                "generated_tokens": generated_tokens,
                "seed": seed,
            },
            "usage": usage_,
        }

    def usage_only(self, usage_: Usage) -> dict[str, Any]:
        return {"id": self._id, "choices": [], "result_type": self.RESULT_TYPE, "usage": usage_}
