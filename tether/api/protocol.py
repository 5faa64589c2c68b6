"""Wire schemas: the only module that knows the JSON field names of Together's API.

Requests are pydantic models that ignore unknown fields (the SDKs send ``user``,
``parallel_tool_calls``, ...; wire-contract.md "Requests"). Responses and stream chunks are
plain dicts built by small functions: a chunk is built once per generated text piece, and a
dict plus ``json.dumps`` is several times cheaper than a pydantic model there.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tether.chat import messages as chat
from tether.engine.errors import InvalidRequestError
from tether.engine.request import TokenInfo

MAX_TOP_LOGPROBS = 20
# A logprob of -inf (or NaN) is not JSON; clamp so every response stays valid JSON.
LOGPROB_FLOOR = -9999.0


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- requests ------------------------------------------------------------------------------


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class FunctionCall(_Wire):
    name: str
    # OpenAI sends a JSON string; some clients send the object itself.
    arguments: str | dict[str, Any] | None = None


class ToolCallMessage(_Wire):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall

    def to_chat(self, index: int) -> chat.ToolCall:
        arguments: Any = self.function.arguments or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequestError(
                f"messages[{index}]: tool call arguments must be a JSON object", param="messages"
            )
        return chat.ToolCall(self.function.name, arguments, self.id)


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallMessage] | None = None
    tool_call_id: str | None = None

    def to_chat(self, index: int) -> chat.Message:
        """The message for the chat layer: OpenAI's ``developer`` is ``system``; text parts
        are joined with newlines, as vLLM does (entrypoints/chat_utils.py)."""
        content = self.content
        if isinstance(content, list):
            content = "\n".join(part.text for part in content)
        calls = self.tool_calls if self.role == "assistant" else None
        if content is None and self.role != "assistant":
            raise InvalidRequestError(
                f"messages[{index}]: content must be a string or a list of text parts",
                param="messages",
            )
        if content is None and not calls:
            content = ""
        return chat.Message(
            role="system" if self.role == "developer" else self.role,
            content=content,
            tool_calls=tuple(call.to_chat(index) for call in calls or ()),
            name=self.name,
            tool_call_id=self.tool_call_id,
        )


class FunctionDefinition(_Wire):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDefinition

    def to_chat(self) -> chat.Function:
        f = self.function
        return chat.Function(f.name, f.description, f.parameters)


class FunctionName(_Wire):
    name: str


class NamedToolChoice(_Wire):
    type: Literal["function"] = "function"
    function: FunctionName


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class JsonSchemaSpec(_Wire):
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Wire):
    """OpenAI's ``json_schema.schema`` and Together's older top-level ``schema`` / ``pattern``."""

    type: Literal["text", "json_object", "json_schema", "regex"]
    json_schema: JsonSchemaSpec | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    pattern: str | None = None

    @property
    def schema_dict(self) -> dict[str, Any] | None:
        if self.json_schema is not None and self.json_schema.schema_ is not None:
            return self.json_schema.schema_
        return self.schema_


class StreamOptions(_Wire):
    include_usage: bool | None = None


class SamplingRequest(_Wire):
    """Fields shared by chat, completions and the legacy ``/inference``."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    # JSON object keys are strings; pydantic turns "9906" into 9906 and names the field
    # when a key is not an integer.
    logit_bias: dict[int, float] | None = None
    seed: int | None = Field(default=None, ge=0)
    n: int | None = Field(default=None, ge=1, le=128)
    # An int 0..20 (Together) or a bool plus top_logprobs (the openai SDK).
    logprobs: bool | int | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool | None = None
    stream: bool | None = None
    response_format: ResponseFormat | None = None
    safety_model: str | None = None  # accepted and ignored
    context_length_exceeded_behavior: Literal["error", "truncate"] = "error"
    stream_options: StreamOptions | None = None
    ignore_eos: bool | None = None

    @field_validator("logprobs")
    @classmethod
    def _logprobs_range(cls, value: bool | int | None) -> bool | int | None:
        out_of_range = not isinstance(value, bool) and not 0 <= (value or 0) <= MAX_TOP_LOGPROBS
        if out_of_range:
            raise ValueError(f"must be a boolean or an integer in [0, {MAX_TOP_LOGPROBS}]")
        return value

    @property
    def choices_n(self) -> int:
        return self.n or 1

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def top_logprobs_count(self) -> int | None:
        """How many alternatives per token to return; ``None`` when logprobs were not asked."""
        if self.logprobs is None or self.logprobs is False:
            return None
        if self.logprobs is True:
            return self.top_logprobs or 0
        return self.logprobs

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def args(self) -> dict[str, Any]:
        """The request's known fields as sent (the legacy ``/inference`` echoes them)."""
        return self.model_dump(exclude_none=True, by_alias=True)


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("must be a string or a list of exactly one string")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class InferenceRequest(SamplingRequest):
    """The legacy ``/inference`` body: completions fields plus ``stream_tokens``."""

    prompt: str
    stream_tokens: bool | None = None

    @property
    def streaming(self) -> bool:
        return bool(self.stream_tokens or self.stream)


# --- shared pieces of responses ------------------------------------------------------------


def finite(logprob: float) -> float:
    return logprob if logprob > LOGPROB_FLOOR else LOGPROB_FLOOR


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cached_tokens": cached_tokens,
    }


def token_object(token: TokenInfo | None) -> dict[str, Any] | None:
    """Together's per-token object (from text-generation-inference's stream format)."""
    if token is None:
        return None
    return {
        "id": token.id,
        "text": token.text,
        "logprob": finite(token.logprob),
        "special": token.special,
    }


def logprobs_object(tokens: list[TokenInfo]) -> dict[str, Any]:
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


def prompt_logprobs_object(texts: list[str], token_ids: list[int]) -> dict[str, Any]:
    """Prompt tokens for ``echo``; the engine does not score prompts, so logprobs are null."""
    return {
        "tokens": texts,
        "token_logprobs": [None] * len(token_ids),
        "token_ids": token_ids,
        "top_logprobs": [None] * len(token_ids),
    }


def prompt_part(text: str, logprobs: dict[str, Any] | None) -> dict[str, Any]:
    return {"text": text, "logprobs": logprobs}


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def error_detail(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": param, "code": code}


def error_body(request_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "error": detail}


def stream_error(detail: dict[str, Any]) -> dict[str, Any]:
    """The event sent when a stream fails after its 200 (wire-contract.md "Stream framing")."""
    return {"error": detail}


# --- stream chunks -------------------------------------------------------------------------


class ChunkBuilder:
    """Chunks of one chat or completions stream; the envelope is fixed once per request."""

    def __init__(self, request_id: str, model: str, created: int, *, chat: bool) -> None:
        self._id = request_id
        self._object = "chat.completion.chunk" if chat else "completion.chunk"
        self._created = created
        self._model = model
        self._chat = chat

    def _delta(self, content: str | None, token_id: int | None) -> dict[str, Any]:
        # ``role`` on every chunk: ``together`` declares it required.
        delta: dict[str, Any] = {"role": "assistant", "content": content, "token_id": token_id}
        if self._chat:
            delta["tool_calls"] = None
        return delta

    def _envelope(
        self, choices: list[dict[str, Any]], usage_: dict[str, int] | None
    ) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": self._object,
            "created": self._created,
            "model": self._model,
            "choices": choices,
            "usage": usage_,
        }

    def text(self, index: int, text: str, token: TokenInfo | None) -> dict[str, Any]:
        """A text piece; ``choices[].logprobs`` is a bare float (``together`` 1.x)."""
        logprob = None if token is None else finite(token.logprob)
        token_id = None if token is None else token.id
        choice = {
            "index": index,
            "text": text,
            "logprobs": logprob,
            "finish_reason": None,
            "seed": None,
            "delta": self._delta(text, token_id),
        }
        chunk = self._envelope([choice], None)
        chunk["token"] = token_object(token)
        return chunk

    def finish(
        self, index: int, reason: str, seed: int, usage_: dict[str, int] | None
    ) -> dict[str, Any]:
        choice = {
            "index": index,
            "text": "",
            "logprobs": None,
            "finish_reason": reason,
            "seed": seed,
            "delta": self._delta("", None),
        }
        return self._envelope([choice], usage_)

    def usage_only(self, usage_: dict[str, int]) -> dict[str, Any]:
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
        usage_: dict[str, int] | None,
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

    def usage_only(self, usage_: dict[str, int]) -> dict[str, Any]:
        return {"id": self._id, "choices": [], "result_type": self.RESULT_TYPE, "usage": usage_}


# --- non-streaming responses ---------------------------------------------------------------


def chat_choice(
    index: int,
    content: str | None,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    seed: int | None,
    logprobs: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "index": index,
        "finish_reason": finish_reason,
        "logprobs": logprobs,
        "seed": seed,
        "message": {"role": "assistant", "content": content, "tool_calls": tool_calls},
    }


def completion_choice(
    index: int, text: str, finish_reason: str, seed: int | None, logprobs: dict[str, Any] | None
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
    usage_: dict[str, int],
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
    usage_: dict[str, int],
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


def model_list(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``openai`` SDK's shape; it crashes on Together's bare array."""
    return {"object": "list", "data": cards}


def health(ready: bool, draining: bool = False) -> dict[str, str]:
    if draining:
        return {"status": "draining"}
    return {"status": "ok" if ready else "loading"}
