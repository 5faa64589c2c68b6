"""Non-streaming answers: chat and completions choices and bodies, and the legacy
``/inference`` body (wire-contract.md "Non-streaming chat and completions").
"""

from __future__ import annotations

from typing import Any

from tether.api.wire.chunks import InferenceChunkBuilder
from tether.api.wire.objects import Logprobs, ToolCallObject, Usage


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
