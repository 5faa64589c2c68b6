"""``GET /v1/models`` and which ``model`` names a request may use.

Accepted names: the engine's model id (what ``/v1/models`` lists), ``config.model_id``, and,
when the server runs a model file, that file's stem (``gemma-3-270m-it-Q4_K_M`` for
``.../gemma-3-270m-it-Q4_K_M.gguf``), since that is the name a user who passed the file sees.
Matching is exact; anything else is a 400 ``model_not_available``. Responses always carry
the canonical id.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.api import responses
from tether.api.errors import ModelNotAvailable
from tether.config import ServerConfig
from tether.engine.base import Engine

# The openai SDK crashes on Together's bare array (wire-contract.md "Models").
_OPENAI_USER_AGENT = "OpenAI/"


class ModelCatalog:
    """The one model this server serves."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self._engine = engine
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

    def cards(self) -> list[dict[str, Any]]:
        return [responses.model_card(self.model_id, self._created, self._engine.context_length)]

    async def list_models(self, request: Request) -> JSONResponse:
        cards = self.cards()
        if request.headers.get("user-agent", "").startswith(_OPENAI_USER_AGENT):
            return JSONResponse(responses.model_list(cards))
        return JSONResponse(cards)
