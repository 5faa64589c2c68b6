"""Chat messages and tools as the chat layer takes them: typed, already validated.

The API's wire schemas (``tether.api.wire.requests``) check a request's messages and convert them
here; the chat layer trusts them. ``for_template`` writes each one in the shape chat
templates are written for (HF transformers' convention: tool-call arguments as objects).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the assistant made earlier in the conversation."""

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None

    def for_template(self) -> dict[str, Any]:
        call: dict[str, Any] = {
            "type": "function",
            "function": {"name": self.name, "arguments": dict(self.arguments)},
        }
        if self.id is not None:
            call["id"] = self.id
        return call


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. ``content`` is ``None`` only for an assistant turn that only calls tools."""

    role: Role
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None  # an earlier assistant turn's thinking

    def reasoning_fields(self) -> dict[str, str]:
        """An assistant turn's reasoning under the names templates read: Qwen3 and DeepSeek's
        ``reasoning_content``, ``reasoning``, and gpt-oss's ``thinking`` (which its template
        refuses beside the content of a turn that calls tools: that content is written as
        the analysis itself)."""
        if self.reasoning is None:
            return {}
        fields = {"reasoning_content": self.reasoning, "reasoning": self.reasoning}
        if not (self.tool_calls and self.content):
            fields["thinking"] = self.reasoning
        return fields

    def for_template(self) -> dict[str, Any]:
        # The SDKs send ``"content": null`` for a turn that only called tools; templates test
        # ``'<think>' in content`` (Qwen3, gpt-oss) or write it out (GLM: "None"). llama.cpp
        # hands them "" (common/chat.cpp), and so does Tether (issue 19).
        message: dict[str, Any] = {"role": self.role, "content": self.content or ""}
        message.update(self.reasoning_fields())
        if self.tool_calls:
            message["tool_calls"] = [call.for_template() for call in self.tool_calls]
        if self.name is not None:
            message["name"] = self.name
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass(frozen=True, slots=True)
class Function:
    """A tool the model may call: its name, what it does, the JSON schema of its arguments."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None

    def spec(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``, the keys that are set."""
        spec: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            spec["description"] = self.description
        if self.parameters is not None:
            spec["parameters"] = dict(self.parameters)
        return spec

    def for_template(self) -> dict[str, Any]:
        return {"type": "function", "function": self.spec()}
