"""The FastAPI app: thin routes over the endpoint services.

Every ``/v1/...`` route is also served under ``/v1/v1/...`` and bare ``/...``: ``together``
3.x appends ``/v1/...`` to its base URL, so users who paste ``http://host:port/v1`` hit
``/v1/v1/...``, while ``together`` 1.x and the TypeScript SDK expect the base URL to end in
``/v1`` (wire-contract.md "Routes"). Every route but ``/health`` and the playground's page
and assets (``tether.api.playground``) requires the API key when keys are configured.
``/openapi.json`` describes the routes (``tether.api.openapi``); the wire rules beyond
shapes are in wire-contract.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether import __version__
from tether.api.auth import ApiKeyAuth
from tether.api.endpoints.chat import ChatService
from tether.api.endpoints.completions import CompletionService
from tether.api.endpoints.inference import InferenceService
from tether.api.endpoints.responses.endpoint import ResponsesService
from tether.api.endpoints.responses.wire import ResponsesRequest
from tether.api.errors import crash_response, install_error_handlers
from tether.api.management import ModelManagement
from tether.api.metrics import CONTENT_TYPE, Metrics
from tether.api.middleware import RequestIdMiddleware
from tether.api.models import ModelCatalog
from tether.api.openapi import openapi_document, request_body
from tether.api.pipeline.context import ChatRenderer, EngineChatTemplate, ServingContext
from tether.api.playground import ASSETS_PATH, assets, playground_router
from tether.api.rate_limit import RateLimiter
from tether.api.shutdown import DrainGuard, Shutdown
from tether.api.wire import model_cards, requests
from tether.config import ServerConfig
from tether.engine.base import Engine
from tether.pool.factory import ServedEngine
from tether.pool.pool import ModelPool
from tether.pool.spec import model_table
from tether.state.store import ResponseStore

V1_PREFIXES = ("/v1", "/v1/v1", "")


def _v1_router(ctx: ServingContext, responses_api: ResponsesService) -> APIRouter:
    router = APIRouter()
    chat = ChatService(ctx)
    completions = CompletionService(ctx)
    router.add_api_route(
        "/chat/completions",
        chat.create,
        methods=["POST"],
        openapi_extra=request_body(requests.ChatCompletionRequest),
    )
    router.add_api_route(
        "/completions",
        completions.create,
        methods=["POST"],
        openapi_extra=request_body(requests.CompletionRequest),
    )
    router.add_api_route("/models", ctx.models.list_models, methods=["GET"])
    router.add_api_route(
        "/responses",
        responses_api.create,
        methods=["POST"],
        openapi_extra=request_body(ResponsesRequest),
    )
    router.add_api_route("/responses/{response_id}", responses_api.retrieve, methods=["GET"])
    router.add_api_route("/responses/{response_id}", responses_api.delete, methods=["DELETE"])
    router.add_api_route(
        "/responses/{response_id}/input_items", responses_api.input_items, methods=["GET"]
    )
    router.add_api_route("/responses/{response_id}/cancel", responses_api.cancel, methods=["POST"])
    _management_v1(router, ModelManagement(ctx.models.pool))
    return router


def _management_v1(router: APIRouter, manage: ModelManagement) -> None:
    """Together's dedicated endpoints (the TypeScript SDK, the OpenAPI spec)."""
    router.add_api_route("/endpoints", manage.list_v1, methods=["GET"])
    router.add_api_route("/endpoints", manage.create_v1, methods=["POST"])
    router.add_api_route("/endpoints/{endpoint_id:path}", manage.get_v1, methods=["GET"])
    router.add_api_route("/endpoints/{endpoint_id:path}", manage.update_v1, methods=["PATCH"])
    router.add_api_route("/endpoints/{endpoint_id:path}", manage.delete_v1, methods=["DELETE"])
    router.add_api_route("/hardware", manage.hardware_v1, methods=["GET"])


def _management_v2(router: APIRouter, manage: ModelManagement) -> None:
    """``together`` 3.x's endpoints and deployments. A model's name may hold slashes, so
    ids are paths, and the deployment routes come first (an id would swallow them)."""
    endpoints = "/projects/{project_id}/endpoints"
    one = endpoints + "/{endpoint_id:path}"
    deployments = one + "/deployments"
    deployment = deployments + "/{deployment_id}"
    router.add_api_route(deployment, manage.get_deployment, methods=["GET"])
    router.add_api_route(deployment, manage.update_deployment, methods=["PATCH"])
    router.add_api_route(deployment, manage.delete_deployment, methods=["DELETE"])
    router.add_api_route(deployments, manage.list_deployments, methods=["GET"])
    router.add_api_route(deployments, manage.create_deployment, methods=["POST"])
    for experiments in ("abExperiments", "shadowExperiments"):
        router.add_api_route(f"{one}/{experiments}", manage.empty_page, methods=["GET"])
    router.add_api_route(endpoints, manage.list_v2, methods=["GET"])
    router.add_api_route(endpoints, manage.create_v2, methods=["POST"])
    router.add_api_route(one, manage.get_v2, methods=["GET"])
    router.add_api_route(one, manage.update_v2, methods=["PATCH"])
    router.add_api_route(one, manage.delete_v2, methods=["DELETE"])
    router.add_api_route("/public/inference-instance-types", manage.hardware_v2, methods=["GET"])


def _v2_router(ctx: ServingContext) -> APIRouter:
    """``together`` 3.x's model routes; also under ``/v1/v2`` for base URLs ending in /v1."""
    router = APIRouter()
    models = ctx.models
    router.add_api_route("/projects/{project_id}/models", models.list_project_models)
    router.add_api_route("/projects/{project_id}/models/{model_id:path}", models.project_model)
    router.add_api_route("/supported-models", models.supported_models)
    _management_v2(router, ModelManagement(models.pool))
    return router


def _legacy_router(ctx: ServingContext) -> APIRouter:
    router = APIRouter()
    inference = InferenceService(ctx)
    body = request_body(requests.InferenceRequest)
    router.add_api_route("/inference", inference.create, methods=["POST"], openapi_extra=body)
    router.add_api_route("/api/inference", inference.create, methods=["POST"], openapi_extra=body)
    return router


def _ops_router(
    pool: ModelPool, metrics: Metrics, auth: ApiKeyAuth, shutdown: Shutdown
) -> APIRouter:
    router = APIRouter()

    async def health() -> Response:
        # 503 while loading and while draining: a load balancer stops sending traffic.
        ok = pool.ready and not shutdown.draining
        body = model_cards.health(pool.ready, shutdown.draining)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def scrape(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    router.add_api_route("/health", health, methods=["GET"])
    router.add_api_route("/metrics", scrape, methods=["GET"], dependencies=[Depends(auth)])
    return router


def _openapi_router(app: FastAPI, auth: ApiKeyAuth) -> APIRouter:
    """``/openapi.json``, behind the same key as ``/v1/models``."""
    router = APIRouter()
    document: dict[str, Any] = {}

    async def openapi() -> JSONResponse:
        if not document:
            document.update(openapi_document(app, __version__))
        return JSONResponse(document)

    router.add_api_route(
        "/openapi.json", openapi, dependencies=[Depends(auth)], include_in_schema=False
    )
    return router


def create_app(
    models: ModelPool | Engine, config: ServerConfig, chat: ChatRenderer | None = None
) -> FastAPI:
    """The HTTP server for a pool of models (``tether.server`` runs its lifecycle), or for
    one engine whose lifecycle the caller runs (tests). ``chat`` renders that engine's chat
    prompts (default: its model's own template)."""
    app = FastAPI(title="tether", docs_url=None, redoc_url=None, openapi_url=None)
    pool = models if isinstance(models, ModelPool) else _pool_of(models, config, chat)
    metrics = Metrics(lambda: [(name, entry.stats()) for name, entry in pool.entries.items()])
    pool.events = metrics
    limiter = RateLimiter(config.rate_limit_rpm, config.rate_limit_tpm)
    ctx = ServingContext(config, ModelCatalog(pool), metrics, limiter)
    auth = ApiKeyAuth(config.api_keys)
    store = None if config.no_store else ResponseStore(config.state_db_path)
    responses_api = ResponsesService(ctx, store)
    v1 = _v1_router(ctx, responses_api)
    for prefix in V1_PREFIXES:
        listed = prefix == "/v1"  # OpenAPI lists each route once, under its canonical path
        app.include_router(
            v1, prefix=prefix, dependencies=[Depends(auth)], include_in_schema=listed
        )
    v2 = _v2_router(ctx)
    for prefix in ("/v2", "/v1/v2"):
        listed = prefix == "/v2"
        app.include_router(
            v2, prefix=prefix, dependencies=[Depends(auth)], include_in_schema=listed
        )
    app.include_router(_legacy_router(ctx), dependencies=[Depends(auth)])
    shutdown = Shutdown(pool, config.drain_timeout)
    app.include_router(_ops_router(pool, metrics, auth, shutdown))
    app.include_router(playground_router())
    app.include_router(_openapi_router(app, auth))
    app.mount(ASSETS_PATH, assets(), name="playground-assets")
    install_error_handlers(app)
    app.add_middleware(DrainGuard, shutdown=shutdown)
    app.add_middleware(RequestIdMiddleware, on_crash=crash_response)  # outside: ids for all
    app.state.metrics = metrics
    app.state.pool = pool
    app.state.store = store
    app.state.responses = responses_api
    app.state.shutdown = shutdown
    return app


def _pool_of(engine: Engine, config: ServerConfig, chat: ChatRenderer | None) -> ModelPool:
    """A pool of the one engine the caller runs."""
    renderer = chat if chat is not None else EngineChatTemplate(engine, config)
    table = model_table(replace(config, model_id=engine.model_id))
    table.aliases.setdefault(config.model_id, engine.model_id)
    return ModelPool.of_engine(cast("ServedEngine", engine), table, renderer)
