"""Together's model-management shapes: dedicated endpoints (``/v1/endpoints``, as the
OpenAPI spec and the TypeScript SDK have them), ``together`` 3.x's v2 endpoints and
deployments (camelCase on the wire), and the hardware lists (wire-contract.md
"Endpoints: model management").

On this server an endpoint is a configured model, named as requests name it; its one
deployment (``DEPLOYMENT_ID``) is the model loaded in this process. ``minReplicas`` 1 is
a pinned model, 0 one loaded on demand; ``inactiveTimeout`` is its idle TTL in minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEPLOYMENT_ID = "local"
MAX_MINUTES = 366 * 24 * 60  # an inactive timeout of at most a year
HARDWARE_ID = "local-cpu"
OWNER = "tether"

# The pool's states (Together's v1 endpoint states) as v2 deployment states.
_DEPLOYMENT_STATES = {
    "STOPPED": "DEPLOYMENT_STATE_STOPPED",
    "STARTING": "DEPLOYMENT_STATE_PROVISIONING",
    "STARTED": "DEPLOYMENT_STATE_READY",
    "STOPPING": "DEPLOYMENT_STATE_STOPPING",
    "ERROR": "DEPLOYMENT_STATE_FAILED",
}


def _when(created: int) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat().replace("+00:00", "Z")


class EndpointView(BaseModel):
    """What every shape below is built from (filled in by the management service)."""

    name: str
    state: str  # STOPPED, STARTING, STARTED, STOPPING, ERROR
    pinned: bool
    ttl_s: float
    created: int
    message: str  # why it is in its state ("loaded", the last load's error, ...)
    hardware: str = HARDWARE_ID


# -- v1 ---------------------------------------------------------------------------------


def _autoscaling_v1(view: EndpointView) -> dict[str, int]:
    return {"min_replicas": int(view.pinned), "max_replicas": 1}


def list_endpoint(view: EndpointView) -> dict[str, Any]:
    return {
        "object": "endpoint",
        "id": view.name,
        "name": view.name,
        "model": view.name,
        "type": "dedicated",
        "owner": OWNER,
        "state": view.state,
        "created_at": _when(view.created),
    }


def dedicated_endpoint(view: EndpointView) -> dict[str, Any]:
    return {
        **list_endpoint(view),
        "display_name": view.name,
        "hardware": view.hardware,
        "autoscaling": _autoscaling_v1(view),
        "inactive_timeout": round(view.ttl_s / 60) if view.ttl_s else None,
    }


def endpoint_list(views: list[EndpointView]) -> dict[str, Any]:
    return {"object": "list", "data": [list_endpoint(view) for view in views]}


class Autoscaling(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    min_replicas: int | None = Field(default=None, ge=0, alias="minReplicas")
    max_replicas: int | None = Field(default=None, ge=0, alias="maxReplicas")


class EndpointUpdate(BaseModel):
    """``PATCH /v1/endpoints/{id}``: any of these; ``state`` starts or stops the model."""

    model_config = ConfigDict(extra="ignore")

    state: str | None = Field(default=None, pattern="^(STARTED|STOPPED)$")
    autoscaling: Autoscaling | None = None
    inactive_timeout: int | None = Field(default=None, ge=0, le=MAX_MINUTES)
    display_name: str | None = None


class EndpointCreate(EndpointUpdate):
    """``POST /v1/endpoints``: only a configured model may be named."""

    model: str


def hardware_list(memory_gib: float, cpu: str) -> dict[str, Any]:
    """``GET /v1/hardware``: this machine, its CPU as the ``gpu_type`` and no GPUs."""
    return {
        "object": "list",
        "data": [
            {
                "object": "hardware",
                "id": HARDWARE_ID,
                "pricing": {"cents_per_minute": 0},
                "specs": {
                    "gpu_type": cpu,
                    "gpu_link": "",
                    "gpu_memory": round(memory_gib),
                    "gpu_count": 0,
                },
                "availability": {"status": "available"},
                "updated_at": _when(int(datetime.now(tz=UTC).timestamp())),
            }
        ],
    }


# -- v2 (together 3.x) --------------------------------------------------------------------


def _autoscaling_v2(view: EndpointView) -> dict[str, int]:
    return {"minReplicas": int(view.pinned), "maxReplicas": 1}


def _ready(view: EndpointView) -> int:
    return int(view.state == "STARTED")


def endpoint_v2(view: EndpointView, project_id: str) -> dict[str, Any]:
    when = _when(view.created)
    summary = {
        "id": DEPLOYMENT_ID,
        "name": f"{view.name}/{DEPLOYMENT_ID}",
        "autoscaling": _autoscaling_v2(view),
        "createdAt": when,
        "estimatedEffectiveTrafficShare": 1.0,
        "model": f"projects/{project_id}/models/{view.name}/revisions/{DEPLOYMENT_ID}",
        "modelId": view.name,
        "state": _DEPLOYMENT_STATES[view.state],
        "trafficMode": "TRAFFIC_MODE_LIVE",
        "readyReplicas": _ready(view),
        "desiredReplicas": _ready(view),
        "hardware": view.hardware,
    }
    return {
        "id": view.name,
        "name": view.name,
        "projectId": project_id,
        "endpointType": "ENDPOINT_TYPE_DEDICATED",
        "visibility": "VISIBILITY_PRIVATE",
        "etag": view.state,
        "createdAt": when,
        "updatedAt": when,
        "trafficSplit": [{"deploymentId": DEPLOYMENT_ID, "weight": 1.0}],
        "deployments": [summary],
    }


def deployment_v2(view: EndpointView, project_id: str) -> dict[str, Any]:
    when = _when(view.created)
    return {
        "id": DEPLOYMENT_ID,
        "endpointId": view.name,
        "projectId": project_id,
        "name": f"{view.name}/{DEPLOYMENT_ID}",
        "etag": view.state,
        "autoscaling": _autoscaling_v2(view),
        "config": f"projects/{project_id}/configs/{DEPLOYMENT_ID}",
        "configId": DEPLOYMENT_ID,
        "hardware": view.hardware,
        "model": f"projects/{project_id}/models/{view.name}/revisions/{DEPLOYMENT_ID}",
        "modelId": view.name,
        "modelRevisionId": DEPLOYMENT_ID,
        "createdAt": when,
        "updatedAt": when,
        "status": {
            "state": _DEPLOYMENT_STATES[view.state],
            "message": view.message,
            "readyReplicas": _ready(view),
            "scheduledReplicas": _ready(view),
        },
        "trafficMode": "TRAFFIC_MODE_LIVE",
        "inactiveTimeout": round(view.ttl_s / 60),
        "runtimeInfo": {
            "engineType": "tether",
            "functionCallingSupported": True,
            "structuredOutputSupported": True,
        },
    }


class EndpointCreateV2(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class EndpointUpdateV2(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None


class DeploymentUpdateV2(BaseModel):
    """``PATCH .../deployments/{id}``: ``autoscaling`` (``minReplicas`` 1 pins and loads,
    ``maxReplicas`` 0 stops, 0 and 1 load on demand) and ``inactiveTimeout`` minutes."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    autoscaling: Autoscaling | None = None
    inactive_timeout: int | None = Field(
        default=None, ge=0, le=MAX_MINUTES, alias="inactiveTimeout"
    )


class DeploymentCreateV2(DeploymentUpdateV2):
    name: str
    model: str | None = None
    model_id: str | None = Field(default=None, alias="modelId")


def hardware_v2(memory_gib: float, cpu: str) -> dict[str, Any]:
    """``GET /v2/public/inference-instance-types``."""
    return {
        "object": "list",
        "next_cursor": None,
        "data": [
            {
                "id": HARDWARE_ID,
                "name": cpu,
                "description": f"{cpu}, {memory_gib:.0f} GiB of memory, no GPU",
                "gpuCount": 0,
                "gpuMemoryGib": 0,
                "gpuType": "none",
                "priceCentsPerHour": 0,
                "regions": [{"name": "local"}],
            }
        ],
    }
