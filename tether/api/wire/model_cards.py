"""Model cards and pages: ``/v1/models`` in Together's and OpenAI's forms, ``together``
3.x's v2 model pages, and ``/health`` (wire-contract.md "Models", "Liveness").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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


def with_state(card: dict[str, Any], state: str, model: str, error: str | None) -> dict[str, Any]:
    """A model card that also says whether the model is loaded (Together's endpoint states:
    STOPPED, STARTING, STARTED, STOPPING, ERROR), which model an alias names (``root``, as
    vLLM's cards have it), and why its last load failed."""
    card["state"] = state
    card["root"] = model
    if error is not None:
        card["load_error"] = error
    return card


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
