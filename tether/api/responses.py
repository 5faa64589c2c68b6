"""Response wire shapes: the JSON bodies and stream chunks Tether sends; with
``tether.api.requests``, the only modules that know the JSON field names of Together's API.

Responses and chunks are plain dicts (typed where their shape is fixed) built by small
functions: a chunk is built once per generated text piece, and a dict plus ``json.dumps`` is
several times cheaper than a pydantic model there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
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


# --- shared pieces of responses ------------------------------------------------------------


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


# --- stream chunks -------------------------------------------------------------------------


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


# --- non-streaming responses ---------------------------------------------------------------


def chat_choice(
    index: int,
    content: str | None,
    tool_calls: list[ToolCallObject],
    finish_reason: str,
    seed: int | None,
    logprobs: Logprobs | dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "index": index,
        "finish_reason": finish_reason,
        "logprobs": logprobs,
        "seed": seed,
        "message": {"role": "assistant", "content": content, "tool_calls": tool_calls},
    }


def add_reasoning(choice: dict[str, Any], reasoning: str | None) -> dict[str, Any]:
    """A reasoning model's ``message.reasoning`` (and ``reasoning_content``, the older name)."""
    choice["message"]["reasoning"] = choice["message"]["reasoning_content"] = reasoning
    return choice


def completion_choice(
    index: int, text: str, finish_reason: str, seed: int | None, logprobs: Logprobs | None
) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "finish_reason": finish_reason,
        "logprobs": logprobs,
        "seed": seed,
    }


def completion_response(
    *,
    request_id: str,
    model: str,
    created: int,
    chat: bool,
    prompt: list[dict[str, Any]],
    choices: list[dict[str, Any]],
    usage_: Usage,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion" if chat else "text.completion",
        "created": created,
        "model": model,
        "prompt": prompt,
        "choices": choices,
        "usage": usage_,
    }


def inference_choice(index: int, text: str, finish_reason: str) -> dict[str, Any]:
    return {"text": text, "index": index, "finish_reason": finish_reason}


def inference_response(
    *,
    request_id: str,
    model: str,
    created: int,
    prompt: str,
    args: dict[str, Any],
    choices: list[dict[str, Any]],
    usage_: Usage,
) -> dict[str, Any]:
    """The old ``status``/``output`` shape and a completions-style top level, together."""
    return {
        "id": request_id,
        "status": "finished",
        "prompt": [prompt],
        "model": model,
        "args": args,
        "output": {
            "choices": choices,
            "result_type": InferenceChunkBuilder.RESULT_TYPE,
            "usage": usage_,
        },
        "choices": choices,
        "usage": usage_,
        "object": "text.completion",
        "created": created,
    }


# --- models --------------------------------------------------------------------------------


def model_card(model_id: str, created: int, context_length: int) -> dict[str, Any]:
    organization, _, name = model_id.rpartition("/")
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "type": "chat",
        "display_name": name,
        "organization": organization,
        "link": f"https://huggingface.co/{model_id}" if organization else "",
        "license": "",
        "context_length": context_length,
        # ``together`` 1.x requires ``pricing``; a self-hosted model costs nothing per token.
        "pricing": {"hourly": 0, "input": 0, "output": 0, "base": 0, "finetune": 0},
    }


def with_sampling_defaults(card: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A model card that also shows what requests are sampled with by default (Tether's)."""
    card["sampling_defaults"] = defaults
    return card


def with_chat_format(
    card: dict[str, Any], tool_parser: str, reasoning_parser: str | None
) -> dict[str, Any]:
    """A model card that also names the formats its calls and reasoning are read in
    (Tether's; vLLM's parser names)."""
    card["chat_format"] = {"tool_call_parser": tool_parser, "reasoning_parser": reasoning_parser}
    return card


def cursor_page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``together`` 3.x's cursor page: every item at once, no next page."""
    return {"data": items, "next_cursor": None}


def project_model(model_id: str, project_id: str, context_length: int) -> dict[str, Any]:
    """A model of ``GET /v2/projects/{id}/models`` (``together`` 3.x's ``Model``)."""
    return {
        "id": model_id,
        "name": model_id,
        "organizationId": "local",
        "projectId": project_id,
        "visibility": "VISIBILITY_PRIVATE",
        "weights": {"contextLength": str(context_length), "type": "WEIGHTS_TYPE_DEFAULT"},
    }


def supported_model(model_id: str, created: int, context_length: int) -> dict[str, Any]:
    """A model of ``GET /v2/supported-models`` (``together`` 3.x's ``SupportedModel``)."""
    when = datetime.fromtimestamp(created, tz=UTC).isoformat().replace("+00:00", "Z")
    publisher = model_id.split("/", 1)[0] if "/" in model_id else "local"
    return {
        "id": model_id,
        "name": model_id,
        "baseModel": model_id,
        "baseModelId": model_id,
        "displayName": model_id,
        "displayType": "chat",
        "publisher": publisher,
        "capabilities": ["CAPABILITY_CHAT"],
        "inputModalities": ["MODALITY_TEXT"],
        "outputModalities": ["MODALITY_TEXT"],
        "products": ["PRODUCT_SERVERLESS"],
        "status": "SUPPORTED_MODEL_STATUS_SUPPORTED",
        "deploymentProfiles": [],
        "createdAt": when,
        "updatedAt": when,
        "contextLength": str(context_length),
        "features": ["FEATURE_TOOL_CALLING", "FEATURE_STRUCTURED_OUTPUT"],
        "pricing": {"input": 0, "output": 0, "cachedInput": 0},
    }


def model_list(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``openai`` SDK's shape; it crashes on Together's bare array."""
    return {"object": "list", "data": cards}


def health(ready: bool, draining: bool = False) -> dict[str, str]:
    if draining:
        return {"status": "draining"}
    return {"status": "ok" if ready else "loading"}
