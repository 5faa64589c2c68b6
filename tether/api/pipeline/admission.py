"""The checks every generation request passes before any work: timing starts, the rate
limits, the body read and parsed, the model resolved and leased (loaded first if it was
not: the wait counts toward time to first token), the engine ready.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

from starlette.requests import Request

from tether.api.errors import (
    Overloaded,
)
from tether.api.metrics import RequestTimer
from tether.api.middleware import add_response_headers, request_id
from tether.api.pipeline.body import parse_body, read_body
from tether.api.pipeline.context import ServingContext
from tether.api.wire import requests
from tether.engine.base import Engine
from tether.pool.pool import Lease


def require_ready(engine: Engine) -> None:
    """503 while the model loads (or after the engine died): the SDKs retry 503 on their own."""
    if not engine.ready:
        raise Overloaded("The model is not ready yet; retry later.")


ApiRequestT = TypeVar("ApiRequestT", bound=requests.ModelRequest)


class Accepted(NamedTuple, Generic[ApiRequestT]):
    """A request past the checks every endpoint makes before any generation: ``ctx`` is the
    serving context for its model, which ``lease`` holds loaded until the request ends
    (``lease.release()``, done by the stream it starts: ``generation.LeasedStream``)."""

    timer: RequestTimer
    request_id: str
    body: ApiRequestT
    model: str
    ctx: ServingContext
    lease: Lease


async def accept(
    ctx: ServingContext, request: Request, schema: type[ApiRequestT]
) -> Accepted[ApiRequestT]:
    """Start timing, apply the rate limits, read and parse the body, resolve and lease the
    model, and check readiness."""
    timer = ctx.metrics.timer()
    rid = request_id(request)
    admission = ctx.limiter.admit(request)  # 429 before the body is even read
    add_response_headers(request, admission.headers)
    timer.charge = admission.charge
    body = parse_body(schema, await read_body(request, ctx.config.max_body_bytes))
    entry = ctx.models.resolve(body.model)
    timer.model = entry.name
    lease = await ctx.models.acquire(entry)
    try:
        require_ready(lease.model.engine)
    except BaseException:
        lease.release()
        raise
    return Accepted(timer, rid, body, entry.name, ctx.for_model(lease.model), lease)
