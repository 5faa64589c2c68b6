"""A request body: read under the size limit, checked for numbers JSON cannot carry, parsed
into its wire schema.

Python's ``json`` and pydantic's parser both accept ``NaN``, ``Infinity`` and numbers that
overflow to infinity (``1e400``), as some clients write them. No field of the contract means
anything by them, and a value that reaches a response (the legacy endpoint echoes its
arguments, the Responses API its tools) cannot be written back as JSON, so any such number,
in any field, is a 400 that names the field (issue 22).
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from tether.api.errors import InvalidRequest, PayloadTooLarge, from_validation_error

RequestT = TypeVar("RequestT", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` (header or bytes seen)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body over the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body over the {limit}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(model: type[RequestT], body: bytes) -> RequestT:
    """The body as ``model``; a 400 naming the first offending field otherwise."""
    reject_non_finite(body)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


class _NonFinite(Exception):
    pass


def _constant(name: str) -> float:
    raise _NonFinite(name)


def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFinite(text)
    return value


def reject_non_finite(body: bytes) -> None:
    """400 when the JSON body holds ``NaN``, ``±Infinity`` or a number beyond a double.

    The common body holds none: one scan with hooks that only fire on such numbers. Only then
    is the body walked again to name where the number is.
    """
    try:
        json.loads(body, parse_constant=_constant, parse_float=_number)
    except _NonFinite:
        pass
    except ValueError:
        return  # not JSON: the schema's parser says so
    else:
        return
    path = _non_finite_path(json.loads(body)) or []
    where = ".".join(str(part) for part in path) or "Request body"
    raise InvalidRequest(
        f"{where}: must be a finite number (NaN and infinities are not JSON numbers)",
        str(path[0]) if path else None,
    )


def _non_finite_path(value: Any) -> list[str | int] | None:
    """Where in ``value`` the first non-finite number is (``[]``: it is one); None: nowhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return []
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        path = _non_finite_path(item)
        if path is not None:
            return [key, *path]
    return None
