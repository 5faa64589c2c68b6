"""The API's errors: one exception per HTTP status, one function that maps engine errors.

    APIError
    ├── InvalidRequest             400 invalid_request (malformed JSON, bad field)
    │   ├── ModelNotAvailable      400 model_not_available
    │   └── ContextLengthExceeded  400 context_length_exceeded
    ├── AuthenticationFailed       401 invalid_api_key
    ├── PayloadTooLarge            413 payload_too_large
    ├── ClientDisconnected         499 (nobody reads it; ends a non-streaming request early)
    ├── RoutingError               404 / 405 from routing
    ├── RateLimited                429 rate_limited, with retry-after and x-ratelimit-*
    ├── InternalError              500 internal_error (never a traceback)
    └── Overloaded                 503 overloaded, with retry-after
        ├── ModelUnavailable       503 model_unavailable (the model could not be loaded)
        └── ShuttingDown           503 server_shutdown (draining, or ended by the drain)

Every error body is ``{"id": <request id>, "error": {"message", "type", "param", "code"}}``
(wire-contract.md "Errors"). Once a stream's 200 has been sent, errors travel in-band instead
(``stream_error_payload``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.api.middleware import request_id
from tether.api.wire import objects
from tether.engine.errors import (
    ContextLengthExceededError,
    EngineError,
    EngineShutdownError,
    InvalidRequestError,
    ModelUnavailableError,
    QueueFullError,
)

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class APIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def detail(self) -> objects.ErrorDetail:
        return objects.error_detail(self.message, self.type, self.param, self.code)


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotAvailable(InvalidRequest):
    code = "model_not_available"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(APIError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    @property
    def headers(self) -> dict[str, str]:
        return {"www-authenticate": "Bearer"}


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class StorageFailed(APIError):
    """The state database failed (``tether.state.store.StoreError``): 503 when it was only
    locked (retry), 500 when it is broken; either way nothing was reported as stored."""

    code = "storage_error"

    def __init__(self, message: str, *, busy: bool) -> None:
        super().__init__(message)
        self.status = 503 if busy else 500


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class ClientDisconnected(APIError):
    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"


class InternalError(APIError):
    pass


class Overloaded(APIError):
    status = 503
    code = "overloaded"

    @property
    def headers(self) -> dict[str, str]:
        # The SDKs retry 503 on their own and honour retry-after (up to 60 s).
        return {"retry-after": str(RETRY_AFTER_S)}


class ModelUnavailable(Overloaded):
    """The model a request names could not be loaded; the message has the loader's reason.
    Other models keep serving."""

    code = "model_unavailable"


class ShuttingDown(Overloaded):
    """SIGTERM: new requests are refused while running ones drain; those still running at
    the drain timeout end with this error in-band (wire-contract.md "Liveness")."""

    code = "server_shutdown"


class RateLimited(APIError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self._headers = headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


def from_engine_error(exc: EngineError) -> APIError:
    if isinstance(exc, ContextLengthExceededError):
        return ContextLengthExceeded(str(exc), exc.param)
    if isinstance(exc, InvalidRequestError):
        return InvalidRequest(str(exc), exc.param)
    if isinstance(exc, EngineShutdownError):
        return ShuttingDown(str(exc) or "The server is shutting down; retry later.")
    if isinstance(exc, ModelUnavailableError):
        return ModelUnavailable(str(exc))
    if isinstance(exc, QueueFullError):
        return Overloaded(str(exc) or "The server is overloaded; retry later.")
    logger.error("engine error: %r", exc)
    return InternalError("The inference engine failed; see the server log.")


def from_validation_error(exc: ValidationError) -> InvalidRequest:
    """A 400 naming the first offending field (``param`` is its top-level name)."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(f"Invalid JSON body: {first['msg']}")
    loc = [str(part) for part in first["loc"]]
    where = ".".join(loc)
    message = f"{where}: {first['msg']}" if where else f"Request body: {first['msg']}"
    return InvalidRequest(message, loc[0] if loc else None)


def as_api_error(exc: Exception) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, EngineError):
        return from_engine_error(exc)
    logger.error("internal error", exc_info=exc)
    return InternalError("Internal server error; see the server log.")


def error_response(exc: APIError, req_id: str) -> JSONResponse:
    body = objects.error_body(req_id, exc.detail())
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def stream_error_payload(exc: Exception) -> dict[str, Any]:
    return objects.stream_error(as_api_error(exc).detail())


async def _handle_api_error(request: Request, exc: Exception) -> Response:
    return error_response(as_api_error(exc), request_id(request))


class RoutingError(APIError):
    """Starlette's 404 / 405, in the contract's error body."""

    type = "invalid_request_error"

    def __init__(self, exc: HTTPException) -> None:
        super().__init__(str(exc.detail))
        self.status = exc.status_code
        self.code = "not_found" if exc.status_code == 404 else None
        self._headers = dict(exc.headers or {})

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    error = RoutingError(exc) if isinstance(exc, HTTPException) else as_api_error(exc)
    return error_response(error, request_id(request))


def crash_response(req_id: str) -> Response:
    """The 500 for an exception nothing else handled (logged by the caller)."""
    return error_response(InternalError("Internal server error; see the server log."), req_id)


def install_error_handlers(app: FastAPI) -> None:
    """Unexpected exceptions are turned into 500s by ``RequestIdMiddleware``."""
    app.add_exception_handler(APIError, _handle_api_error)
    app.add_exception_handler(EngineError, _handle_api_error)
    app.add_exception_handler(HTTPException, _handle_http_exception)
