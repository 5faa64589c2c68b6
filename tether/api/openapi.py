"""``GET /openapi.json``: the served routes and their request bodies, for client generators
and API fuzzers.

The generation routes read their bodies themselves (``GenerationEndpoint.accept``, so that a
bad body is Together's 400 and not FastAPI's 422); their OpenAPI request bodies are
declared here from the same pydantic models. Only the canonical spelling of each route is
listed (``/v1/...``, not its ``/v1/v1/...`` and bare aliases).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from tether.api.endpoints.responses.wire import ResponsesRequest
from tether.api.wire import requests

BODY_MODELS: tuple[type[BaseModel], ...] = (
    requests.ChatCompletionRequest,
    requests.CompletionRequest,
    requests.InferenceRequest,
    ResponsesRequest,
)
_REF = "#/components/schemas/{model}"


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: its JSON body is ``model``."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_document(app: FastAPI, version: str) -> dict[str, Any]:
    document = get_openapi(
        title="Tether",
        version=version,
        summary="Together AI's inference API, self-hosted",
        description="The wire rules are in docs/wire-contract.md.",
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in BODY_MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return document
