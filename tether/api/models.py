"""``GET /v1/models``, ``together`` 3.x's v2 model routes, and which ``model`` names a
request may use.

``together`` 3.x lists models with ``GET /v2/projects/{project_id}/models`` (any project id
answers: there is one model and no projects), reads one with ``.../models/{id}``, and lists
``GET /v2/supported-models``; each is a cursor page (wire-contract.md "Models").

Accepted names: the engine's model id (what ``/v1/models`` lists), ``config.model_id``, and,
when the server runs a model file, that file's stem (``gemma-3-270m-it-Q4_K_M`` for
``.../gemma-3-270m-it-Q4_K_M.gguf``), since that is the name a user who passed the file sees.
Matching is exact; anything else is a 400 ``model_not_available``. Responses always carry
the canonical id.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.api.errors import ModelNotAvailable, RoutingError
from tether.api.wire import model_cards
from tether.chat.reasoning import ReasoningMarkers
from tether.config import ServerConfig
from tether.engine.base import Engine
from tether.engine.sampling_params import SamplingDefaults


class ChatFormat(Protocol):
    """Which formats the model writes calls and reasoning in (``ChatRenderer``)."""

    @property
    def tool_parser(self) -> str: ...

    @property
    def reasoning_markers(self) -> ReasoningMarkers | None: ...


# The openai SDK crashes on Together's bare array (wire-contract.md "Models").
_OPENAI_USER_AGENT = "OpenAI/"


class ModelCatalog:
    """The one model this server serves."""

    def __init__(self, engine: Engine, config: ServerConfig, chat: ChatFormat) -> None:
        self._engine = engine
        self._chat = chat
        self._overrides = config.sampling_defaults
        self._defaults: SamplingDefaults | None = None
        self._created = int(time.time())
        self._aliases = {config.model_id}
        if config.model_path:
            self._aliases.add(Path(config.model_path).stem)

    @property
    def model_id(self) -> str:
        return self._engine.model_id

    def resolve(self, requested: str) -> str:
        """The canonical id for ``requested``, or ``ModelNotAvailable``."""
        if requested == self.model_id or requested in self._aliases:
            return self.model_id
        raise ModelNotAvailable(
            f"Model {requested!r} is not available; this server serves {self.model_id!r}.",
            "model",
        )

    def sampling_defaults(self) -> SamplingDefaults:
        """What a request's missing sampling fields are: the server's ``--sampling-defaults``
        over the model's own (known once the engine has loaded it)."""
        if self._defaults is not None:
            return self._defaults
        defaults = self._engine.sampling_defaults.with_values(self._overrides)
        if self._engine.ready:
            self._defaults = defaults
        return defaults

    def cards(self) -> list[dict[str, Any]]:
        card = model_cards.model_card(self.model_id, self._created, self._engine.context_length)
        card = model_cards.with_sampling_defaults(card, self.sampling_defaults().as_dict())
        if self._engine.ready:  # the model's own template is known once it has loaded
            markers = self._chat.reasoning_markers
            reasoning = markers.name if markers is not None else None
            card = model_cards.with_chat_format(card, self._chat.tool_parser, reasoning)
        return [card]

    async def list_models(self, request: Request) -> JSONResponse:
        cards = self.cards()
        if request.headers.get("user-agent", "").startswith(_OPENAI_USER_AGENT):
            return JSONResponse(model_cards.model_list(cards))
        return JSONResponse(cards)

    async def list_project_models(self, project_id: str) -> JSONResponse:
        model = model_cards.project_model(self.model_id, project_id, self._engine.context_length)
        return JSONResponse(model_cards.cursor_page([model]))

    async def project_model(self, project_id: str, model_id: str) -> JSONResponse:
        self._known(model_id)
        return JSONResponse(
            model_cards.project_model(self.model_id, project_id, self._engine.context_length)
        )

    async def supported_models(self) -> JSONResponse:
        model = model_cards.supported_model(
            self.model_id, self._created, self._engine.context_length
        )
        return JSONResponse(model_cards.cursor_page([model]))

    def _known(self, model_id: str) -> None:
        if model_id != self.model_id and model_id not in self._aliases:
            raise RoutingError(
                HTTPException(
                    404, f"Model {model_id!r} not found; this server serves {self.model_id!r}."
                )
            )
