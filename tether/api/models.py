"""``GET /v1/models``, ``together`` 3.x's v2 model routes, and which ``model`` names a
request may use.

``together`` 3.x lists models with ``GET /v2/projects/{project_id}/models`` (any project id
answers: there are no projects), reads one with ``.../models/{id}``, and lists
``GET /v2/supported-models``; each is a cursor page (wire-contract.md "Models").

Accepted names: every configured model's name and alias (``tether.pool.spec``); with one
model served the pre-pool way, also its file's stem (``gemma-3-270m-it-Q4_K_M`` for
``.../gemma-3-270m-it-Q4_K_M.gguf``), the name a user who passed the file sees. A request
without ``model`` gets the default model, when there is one. Matching is exact; anything
else is a 400 ``model_not_available``. Responses carry the model's name (an alias is
answered under the name it stands for).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.api.errors import ModelNotAvailable, RoutingError
from tether.api.wire import model_cards
from tether.pool.pool import Lease, ModelEntry, ModelPool

# The openai SDK crashes on Together's bare array (wire-contract.md "Models").
_OPENAI_USER_AGENT = "OpenAI/"


class ModelCatalog:
    """The models of this server's pool, as requests name them and listings show them."""

    def __init__(self, pool: ModelPool) -> None:
        self.pool = pool

    def resolve(self, requested: str | None) -> ModelEntry:
        """The model ``requested`` names (``None``: the default), or ``ModelNotAvailable``."""
        entry = self.pool.resolve(requested)
        if entry is not None:
            return entry
        served = ", ".join(repr(name) for name in self.pool.entries)
        if requested is None:
            raise ModelNotAvailable(
                f"model: required (this server has no default model); it serves {served}.",
                "model",
            )
        raise ModelNotAvailable(
            f"Model {requested!r} is not available; this server serves {served}.", "model"
        )

    async def acquire(self, entry: ModelEntry) -> Lease:
        return await self.pool.acquire(entry)

    def _listed(self) -> list[tuple[str, ModelEntry]]:
        """Every model under its name, then every listed alias, with the model it names."""
        entries = self.pool.entries
        named = [(name, entry) for name, entry in entries.items()]
        table = self.pool.table
        return named + [(alias, entries[table.aliases[alias]]) for alias in table.listed]

    def cards(self) -> list[dict[str, Any]]:
        return [self._card(name, entry) for name, entry in self._listed()]

    def _card(self, name: str, entry: ModelEntry) -> dict[str, Any]:
        loaded = entry.loaded
        context = loaded.engine.context_length if loaded else entry.spec.config.ctx_size
        card = model_cards.model_card(name, entry.created, context)
        card = model_cards.with_state(card, entry.shown_state.value, entry.name, entry.error)
        if loaded is not None and loaded.engine.ready:
            # The model's own defaults and template are known once it has loaded.
            card = model_cards.with_sampling_defaults(card, loaded.sampling_defaults().as_dict())
            markers = loaded.chat.reasoning_markers
            reasoning = markers.name if markers is not None else None
            card = model_cards.with_chat_format(card, loaded.chat.tool_parser, reasoning)
        return card

    async def list_models(self, request: Request) -> JSONResponse:
        cards = self.cards()
        if request.headers.get("user-agent", "").startswith(_OPENAI_USER_AGENT):
            return JSONResponse(model_cards.model_list(cards))
        return JSONResponse(cards)

    def _context(self, entry: ModelEntry) -> int:
        loaded = entry.loaded
        return loaded.engine.context_length if loaded else entry.spec.config.ctx_size

    async def list_project_models(self, project_id: str) -> JSONResponse:
        models = [
            model_cards.project_model(name, project_id, self._context(entry))
            for name, entry in self._listed()
        ]
        return JSONResponse(model_cards.cursor_page(models))

    async def project_model(self, project_id: str, model_id: str) -> JSONResponse:
        entry = self._known(model_id)
        return JSONResponse(model_cards.project_model(model_id, project_id, self._context(entry)))

    async def supported_models(self) -> JSONResponse:
        models = [
            model_cards.supported_model(name, entry.created, self._context(entry))
            for name, entry in self._listed()
        ]
        return JSONResponse(model_cards.cursor_page(models))

    def _known(self, model_id: str) -> ModelEntry:
        entry = self.pool.resolve(model_id)
        if entry is None:
            served = ", ".join(repr(name) for name in self.pool.entries)
            raise RoutingError(
                HTTPException(404, f"Model {model_id!r} not found; this server serves {served}.")
            )
        return entry
