"""What every endpoint is given: the configuration, the model catalog, metrics and rate
limits (``ServingContext``, built once by ``create_app``), and, once a request's model is
resolved and loaded, that model: its engine and the chat template in force
(``ctx.for_model``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from tether.api.metrics import Metrics
from tether.api.models import ModelCatalog
from tether.api.rate_limit import RateLimiter
from tether.chat.call_ids import CallIds
from tether.chat.messages import Function, Message
from tether.chat.reasoning import ReasoningMarkers
from tether.chat.template import ChatTemplate
from tether.config import ServerConfig
from tether.engine.base import Engine

if TYPE_CHECKING:
    from tether.pool.pool import LoadedModel


@dataclass(frozen=True, slots=True)
class ServingContext:
    """What every endpoint needs; built once by ``create_app``. ``model`` is the model a
    request is served by, set by ``for_model`` once the request has a lease on it."""

    config: ServerConfig
    models: ModelCatalog
    metrics: Metrics
    limiter: RateLimiter
    model: LoadedModel | None = None

    def for_model(self, model: LoadedModel) -> ServingContext:
        return replace(self, model=model)

    @property
    def served(self) -> LoadedModel:
        if self.model is None:
            raise RuntimeError("no model resolved for this request yet")
        return self.model

    @property
    def engine(self) -> Engine:
        return self.served.engine

    @property
    def chat(self) -> ChatRenderer:
        chat: ChatRenderer = self.served.chat
        return chat


class ChatRenderer(Protocol):
    """Renders chat messages into prompt text, and says which formats the model writes calls
    and reasoning in (``tether.chat.template.ChatTemplate``)."""

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any],
    ) -> str: ...

    @property
    def reasoning_markers(self) -> ReasoningMarkers | None: ...

    @property
    def tool_parser(self) -> str: ...

    @property
    def call_ids(self) -> CallIds: ...


class EngineChatTemplate:
    """The chat template in force (``ServerConfig.chat_template_for``): ``--chat-template``'s,
    else the served model's own (or Gemma's format when it has none), read from the engine
    once it has loaded."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self._engine = engine
        self._config = config
        self._template: ChatTemplate | None = None

    @property
    def template(self) -> ChatTemplate:
        if self._template is None:
            self._template = self._config.chat_template_for(self._engine.chat_template)
        return self._template

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Function],
        variables: Mapping[str, Any],
    ) -> str:
        return self.template.render(messages, tools, variables)

    @property
    def reasoning_markers(self) -> ReasoningMarkers | None:
        return self.template.reasoning_markers

    @property
    def tool_parser(self) -> str:
        return self.template.tool_parser

    @property
    def call_ids(self) -> CallIds:
        return self.template.call_ids
