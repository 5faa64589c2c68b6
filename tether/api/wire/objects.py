"""The small objects every answer is made of: usage, a token, logprobs in Together's and
OpenAI's shapes, a tool call, an error body. Plain dicts (typed where their shape is
fixed): one is built per generated piece, and a dict plus ``json.dumps`` is several times
cheaper than a pydantic model there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict

from tether.engine.request import TokenInfo

# How a request asked for logprobs: not at all, Together's integer, or OpenAI's boolean.
LogprobStyle = Literal["none", "together", "openai"]


# A logprob of -inf (or NaN) is not JSON; clamp so every response stays valid JSON.
LOGPROB_FLOOR = -9999.0


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    completion_tokens_details: NotRequired[dict[str, int]]


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class TokenObject(TypedDict):
    """Together's per-token object (from text-generation-inference's stream format)."""

    id: int
    text: str
    logprob: float
    special: bool


class Logprobs(TypedDict):
    tokens: list[str]
    token_logprobs: list[float | None]
    token_ids: list[int]
    top_logprobs: list[dict[str, float] | None]


class ToolCallObject(TypedDict):
    id: str
    type: str
    function: dict[str, str]


def finite(logprob: float) -> float:
    return logprob if logprob > LOGPROB_FLOOR else LOGPROB_FLOOR


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int,
    reasoning_tokens: int | None = None,
) -> Usage:
    """``reasoning_tokens`` (of the completion) only for a reasoning model's request."""
    wire: Usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cached_tokens": cached_tokens,
    }
    if reasoning_tokens is not None:
        wire["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return wire


def token_object(token: TokenInfo | None) -> TokenObject | None:
    if token is None:
        return None
    return {
        "id": token.id,
        "text": token.text,
        "logprob": finite(token.logprob),
        "special": token.special,
    }


def logprobs_object(tokens: list[TokenInfo]) -> Logprobs:
    """``{"tokens", "token_logprobs", "token_ids", "top_logprobs"}`` for a non-streaming choice."""
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [finite(t.logprob) for t in tokens],
        "token_ids": [t.id for t in tokens],
        "top_logprobs": [
            None if t.top_logprobs is None else {a.text: finite(a.logprob) for a in t.top_logprobs}
            for t in tokens
        ],
    }


def openai_logprobs_object(tokens: Sequence[TokenInfo]) -> dict[str, Any]:
    """OpenAI's chat ``logprobs``: ``{"content": [{"token", "logprob", "bytes",
    "top_logprobs"}], "refusal": null}`` (special tokens carry no text and are left out)."""
    return {
        "content": [
            {
                **_openai_entry(t.text, t.logprob),
                "top_logprobs": [_openai_entry(a.text, a.logprob) for a in t.top_logprobs or ()],
            }
            for t in tokens
            if not t.special
        ],
        "refusal": None,
    }


def _openai_entry(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": finite(logprob), "bytes": list(text.encode())}


def prompt_logprobs_object(
    texts: list[str], token_ids: list[int], logprobs: list[float | None] | None
) -> Logprobs:
    """Prompt tokens for ``echo``: each one's logprob given those before it (the first has
    none); alternatives are not computed for prompt positions."""
    scores = logprobs if logprobs is not None else [None] * len(token_ids)
    return {
        "tokens": texts,
        "token_logprobs": [None if lp is None else finite(lp) for lp in scores],
        "token_ids": token_ids,
        "top_logprobs": [None] * len(token_ids),
    }


def prompt_part(text: str, logprobs: Logprobs | None) -> dict[str, Any]:
    return {"text": text, "logprobs": logprobs}


def tool_call(call_id: str, name: str, arguments: str) -> ToolCallObject:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def error_detail(message: str, type_: str, param: str | None, code: str | None) -> ErrorDetail:
    return {"message": message, "type": type_, "param": param, "code": code}


def error_body(request_id: str, detail: ErrorDetail) -> dict[str, Any]:
    return {"id": request_id, "error": detail}


def stream_error(detail: ErrorDetail) -> dict[str, Any]:
    """The event sent when a stream fails after its 200 (wire-contract.md "Stream framing")."""
    return {"error": detail}
