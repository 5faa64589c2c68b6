"""Request wire schemas: pydantic models of the bodies clients send; with the other modules
of ``tether.api.wire``, the only ones that know the JSON field names of Together's API.

Requests ignore unknown fields (the SDKs send ``user``, ``parallel_tool_calls``, ...;
wire-contract.md "Requests"). Each model converts itself into the engine-neutral or chat
types the rest of the server works with (``to_chat``, the sampling fields).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tether.api.wire.objects import LogprobStyle
from tether.chat import messages as chat
from tether.chat.template import RESERVED_VARIABLES
from tether.engine.errors import InvalidRequestError
from tether.engine.sampling_params import MAX_TOP_LOGPROBS


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


WireRole = Literal["system", "developer", "user", "assistant", "tool", "function"]


def _chat_role(role: WireRole) -> chat.Role:
    """OpenAI's aliases as chat knows them: ``developer`` is system, ``function`` is tool."""
    if role == "developer":
        return "system"
    if role == "function":
        return "tool"
    return role


class ChatMessage(_Wire):
    # "function" and ``function_call`` are OpenAI's deprecated forms of "tool" and
    # ``tool_calls``; older clients still send them (wire-contract.md "Requests").
    role: WireRole
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallMessage] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    # An earlier answer's thinking (Together and vLLM: ``reasoning``; DeepSeek's API and
    # older clients: ``reasoning_content``).
    reasoning: str | None = None
    reasoning_content: str | None = None

    def to_chat(self, index: int) -> chat.Message:
        """The message for the chat layer: OpenAI's ``developer`` is ``system``; text parts
        are joined with newlines, as vLLM does (entrypoints/chat_utils.py)."""
        content = self.content
        if isinstance(content, list):
            content = "\n".join(part.text for part in content)
        calls = self.tool_calls if self.role == "assistant" else None
        if self.role == "assistant" and not calls and self.function_call is not None:
            calls = [ToolCallMessage(function=self.function_call)]
        if content is None and self.role != "assistant":
            raise InvalidRequestError(
                f"messages[{index}]: content must be a string or a list of text parts",
                param="messages",
            )
        if content is None and not calls:
            content = ""
        return chat.Message(
            role=_chat_role(self.role),
            content=content,
            tool_calls=tuple(call.to_chat(index) for call in calls or ()),
            name=self.name,
            tool_call_id=self.tool_call_id,
            reasoning=self.reasoning if self.reasoning is not None else self.reasoning_content,
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


class ModelRequest(_Wire):
    """A generation request: it names the model (without one: the server's default model,
    when it has one; ``tether.api.models``)."""

    model: str | None = None


class SamplingRequest(ModelRequest):
    """Fields shared by chat, completions and the legacy ``/inference``."""

    max_tokens: int | None = Field(default=None, ge=1)
    # OpenAI's newer name; LangChain's ChatOpenAI sends only this one.
    max_completion_tokens: int | None = Field(default=None, ge=1)
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

    @field_validator("max_completion_tokens")
    @classmethod
    def _same_as_max_tokens(cls, value: int | None, info: ValidationInfo) -> int | None:
        given = info.data.get("max_tokens")
        if value is not None and given is not None and value != given:
            raise ValueError(f"is a synonym of max_tokens, and they differ ({value} != {given})")
        return value

    @model_validator(mode="after")
    def _one_max_tokens(self) -> SamplingRequest:
        if self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens
        return self

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
    def logprob_style(self) -> LogprobStyle:
        """The shape the request asked its logprobs in: an integer is Together's, a boolean
        OpenAI's (wire-contract.md "Requests")."""
        if self.logprobs is None or self.logprobs is False:
            return "none"
        return "openai" if self.logprobs is True else "together"

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def args(self) -> dict[str, Any]:
        """The request's known fields as sent (the legacy ``/inference`` echoes them)."""
        return self.model_dump(exclude_none=True, by_alias=True)


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class ReasoningOptions(_Wire):
    enabled: bool | None = None
    effort: ReasoningEffort | None = None


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    # Reasoning models (wire-contract.md "Requests"): all three reach the chat template.
    reasoning: ReasoningOptions | None = None
    reasoning_effort: ReasoningEffort | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @field_validator("chat_template_kwargs")
    @classmethod
    def _not_reserved(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        reserved = sorted(RESERVED_VARIABLES.intersection(value or {}))
        if reserved:
            raise ValueError(f"{reserved[0]!r} is set by the server")
        return value

    @property
    def effort(self) -> ReasoningEffort | None:
        if self.reasoning_effort is not None:
            return self.reasoning_effort
        return self.reasoning.effort if self.reasoning is not None else None

    @property
    def reasoning_enabled(self) -> bool | None:
        """Whether the request turned reasoning on or off (None: the template's default)."""
        kwargs = self.chat_template_kwargs or {}
        if isinstance(kwargs.get("enable_thinking"), bool):
            return bool(kwargs["enable_thinking"])
        if self.reasoning is not None and self.reasoning.enabled is not None:
            return self.reasoning.enabled
        if self.effort is not None:
            return self.effort != "none"
        return None

    def template_variables(self) -> dict[str, Any]:
        """What the chat template is rendered with besides the messages: Qwen3's and GLM's
        ``enable_thinking``, DeepSeek V3.1's ``thinking``, gpt-oss's ``reasoning_effort``,
        then ``chat_template_kwargs`` as given (they win)."""
        variables: dict[str, Any] = {}
        enabled = self.reasoning_enabled
        if enabled is not None:
            variables["enable_thinking"] = variables["thinking"] = enabled
        if self.effort is not None and self.effort != "none":
            variables["reasoning_effort"] = self.effort
        variables.update(self.chat_template_kwargs or {})
        return variables


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
