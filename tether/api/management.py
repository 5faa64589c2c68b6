"""Together's model-management API over the pool: dedicated endpoints (``/v1/endpoints``,
``/v1/hardware``) and ``together`` 3.x's v2 endpoints and deployments
(``/v2/projects/{project_id}/endpoints[/{id}/deployments[/{id}]]``,
``/v2/public/inference-instance-types``).

An endpoint is a configured model (named as requests name it, aliases too); its one
deployment is the model loaded here. Starting one loads it (in the background: the call
answers at once with ``STARTING``, as Together's does); stopping one unloads it once no
request holds it. ``minReplicas`` 1 pins a model, 0 lets it load on demand and unload
after ``inactiveTimeout`` minutes idle. Clients cannot make the server load a file: an
endpoint for a model that is not configured is a 403.
"""

from __future__ import annotations

import platform
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api.errors import APIError, NotFound, from_validation_error
from tether.api.pipeline.body import read_body
from tether.api.wire import endpoints as wire
from tether.pool import memory
from tether.pool.control import ModelControl
from tether.pool.pool import ModelEntry, ModelPool

MAX_BODY = 64 * 1024
BodyT = TypeVar("BodyT", bound=BaseModel)


class Forbidden(APIError):
    status = 403
    type = "invalid_request_error"
    code = "forbidden"


class ModelManagement:
    def __init__(self, pool: ModelPool) -> None:
        self.pool = pool
        self.control = ModelControl(pool)

    # -- v1 -----------------------------------------------------------------------------

    async def list_v1(self) -> JSONResponse:
        return JSONResponse(wire.endpoint_list([self._view(e) for e in self._entries()]))

    async def get_v1(self, endpoint_id: str) -> JSONResponse:
        return JSONResponse(wire.dedicated_endpoint(self._view(self._entry(endpoint_id))))

    async def update_v1(self, endpoint_id: str, request: Request) -> JSONResponse:
        entry = self._entry(endpoint_id)
        update = await _body(request, wire.EndpointUpdate)
        await self._apply(entry, update.autoscaling, update.inactive_timeout, update.state)
        return JSONResponse(wire.dedicated_endpoint(self._view(entry)))

    async def create_v1(self, request: Request) -> JSONResponse:
        create = await _body(request, wire.EndpointCreate)
        entry = self._configured(create.model)
        state = create.state or "STARTED"
        await self._apply(entry, create.autoscaling, create.inactive_timeout, state)
        return JSONResponse(wire.dedicated_endpoint(self._view(entry)))

    async def delete_v1(self, endpoint_id: str) -> Response:
        await self.control.stop_model(self._entry(endpoint_id))
        return Response(status_code=204)

    async def hardware_v1(self) -> JSONResponse:
        return JSONResponse(wire.hardware_list(memory.total_bytes() / memory.GIB, _cpu()))

    # -- v2 (together 3.x) ----------------------------------------------------------------

    async def list_v2(self, project_id: str) -> JSONResponse:
        items = [wire.endpoint_v2(self._view(e), project_id) for e in self._entries()]
        return JSONResponse({"object": "list", "data": items, "next_cursor": None})

    async def get_v2(self, project_id: str, endpoint_id: str) -> JSONResponse:
        return JSONResponse(wire.endpoint_v2(self._view(self._entry(endpoint_id)), project_id))

    async def update_v2(self, project_id: str, endpoint_id: str, request: Request) -> JSONResponse:
        entry = self._entry(endpoint_id)
        update = await _body(request, wire.EndpointUpdateV2)
        if update.name is not None and self.pool.resolve(update.name) is not entry:
            raise Forbidden("An endpoint is a configured model: it cannot be renamed.", "name")
        return JSONResponse(wire.endpoint_v2(self._view(entry), project_id))

    async def create_v2(self, project_id: str, request: Request) -> JSONResponse:
        entry = self._configured((await _body(request, wire.EndpointCreateV2)).name)
        return JSONResponse(wire.endpoint_v2(self._view(entry), project_id))

    async def delete_v2(self, project_id: str, endpoint_id: str) -> JSONResponse:
        await self.control.stop_model(self._entry(endpoint_id))
        return JSONResponse({})

    async def list_deployments(self, project_id: str, endpoint_id: str) -> JSONResponse:
        entry = self._entry(endpoint_id)
        items = [wire.deployment_v2(self._view(entry), project_id)]
        return JSONResponse({"object": "list", "data": items, "next_cursor": None})

    async def get_deployment(
        self, project_id: str, endpoint_id: str, deployment_id: str
    ) -> JSONResponse:
        entry = self._deployment(endpoint_id, deployment_id)
        return JSONResponse(wire.deployment_v2(self._view(entry), project_id))

    async def update_deployment(
        self, project_id: str, endpoint_id: str, deployment_id: str, request: Request
    ) -> JSONResponse:
        entry = self._deployment(endpoint_id, deployment_id)
        update = await _body(request, wire.DeploymentUpdateV2)
        await self._apply(entry, update.autoscaling, update.inactive_timeout, None)
        return JSONResponse(wire.deployment_v2(self._view(entry), project_id))

    async def create_deployment(
        self, project_id: str, endpoint_id: str, request: Request
    ) -> JSONResponse:
        entry = self._entry(endpoint_id)
        create = await _body(request, wire.DeploymentCreateV2)
        for named in (create.model_id, _model_of(create.model)):
            if named is not None and self.pool.resolve(named) is not entry:
                raise Forbidden(f"Endpoint {entry.name!r} serves only its own model.", "model")
        await self._apply(entry, create.autoscaling, create.inactive_timeout, "STARTED")
        return JSONResponse(wire.deployment_v2(self._view(entry), project_id))

    async def delete_deployment(
        self, project_id: str, endpoint_id: str, deployment_id: str
    ) -> JSONResponse:
        await self.control.stop_model(self._deployment(endpoint_id, deployment_id))
        return JSONResponse({})

    async def empty_page(self, project_id: str, endpoint_id: str) -> JSONResponse:
        """A/B and shadow experiments (``together endpoints retrieve`` lists them): none."""
        self._entry(endpoint_id)
        return JSONResponse({"data": [], "next_cursor": None})

    async def hardware_v2(self) -> JSONResponse:
        return JSONResponse(wire.hardware_v2(memory.total_bytes() / memory.GIB, _cpu()))

    # -- the pool ---------------------------------------------------------------------------

    async def _apply(
        self,
        entry: ModelEntry,
        autoscaling: wire.Autoscaling | None,
        inactive_minutes: int | None,
        state: str | None,
    ) -> None:
        """Settings first (pinning, TTL), then the start or stop they ask for."""
        if inactive_minutes is not None:
            self.control.set_ttl(entry, inactive_minutes * 60.0)
        if autoscaling is not None:
            if autoscaling.max_replicas == 0:
                state = "STOPPED"
            elif autoscaling.min_replicas is not None:
                self.control.set_pinned(entry, autoscaling.min_replicas > 0)
                if autoscaling.min_replicas > 0:
                    state = state or "STARTED"
        if state == "STARTED":
            self.control.start_model(entry)
        elif state == "STOPPED":
            await self.control.stop_model(entry)

    def _entries(self) -> list[ModelEntry]:
        return list(self.pool.entries.values())

    def _entry(self, endpoint_id: str) -> ModelEntry:
        entry = self.pool.resolve(endpoint_id)
        if entry is None:
            raise NotFound(f"Endpoint {endpoint_id!r} not found.")
        return entry

    def _configured(self, model: str) -> ModelEntry:
        entry = self.pool.resolve(model)
        if entry is None:
            raise Forbidden(
                f"Model {model!r} is not in this server's configuration; endpoints can be "
                "made only for configured models (--model, --models-dir, --models-file).",
                "model",
            )
        return entry

    def _deployment(self, endpoint_id: str, deployment_id: str) -> ModelEntry:
        entry = self._entry(endpoint_id)
        if deployment_id != wire.DEPLOYMENT_ID:
            raise NotFound(f"Deployment {deployment_id!r} not found; it is {wire.DEPLOYMENT_ID!r}.")
        return entry

    def _view(self, entry: ModelEntry) -> wire.EndpointView:
        if entry.error is not None:
            message = entry.error
        elif entry.loaded is not None:
            message = "loaded"
        else:
            message = "not loaded: loads when a request asks for it"
        return wire.EndpointView(
            name=entry.name,
            state=entry.shown_state.value,
            pinned=entry.pinned,
            ttl_s=entry.ttl_s,
            created=entry.created,
            message=message,
        )


def _model_of(reference: str | None) -> str | None:
    """``projects/{p}/models/{model}[/revisions/{r}]`` → ``model``."""
    if reference is None:
        return None
    _, marker, rest = reference.partition("/models/")
    if not marker:
        return reference
    return rest.split("/revisions/")[0]


async def _body(request: Request, schema: type[BodyT]) -> BodyT:
    raw = await read_body(request, MAX_BODY)
    try:
        return schema.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


def _cpu() -> str:
    """The CPU's model name, as ``/proc/cpuinfo`` reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"
