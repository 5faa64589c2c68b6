"""``--response-format``: the constraint a load sends with every request, and the same
constraint in llama.cpp's own terms for ``llama-server``.

The flag's value is a JSON file holding an OpenAI ``response_format`` object, e.g.
``{"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}`` or
``{"type": "json_object"}``, or that object itself written inline (what the result file's
``command`` records, so that it reproduces the run without the file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def read(text: str) -> dict[str, Any]:
    """The flag's argparse type: the ``response_format`` object in the file ``text`` names,
    or in ``text`` itself when it starts with ``{``."""
    if text.lstrip().startswith("{"):
        source, where = text, "the --response-format value"
    else:
        try:
            source, where = Path(text).read_text(encoding="utf-8"), text
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text}: {exc}") from exc
    try:
        value = json.loads(source)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{where} is not JSON: {exc}") from exc
    try:
        return check(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{where}: {exc}") from exc


def check(value: Any) -> dict[str, Any]:
    """``value`` if it has the shape of a ``response_format`` object; else ``ValueError``.
    Only the shape: which types and schemas a server accepts is the server's to say."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError('expected a response_format object like {"type": "json_object"}')
    if value["type"] == "json_schema":
        wrapper = value.get("json_schema")
        if not isinstance(wrapper, dict) or not isinstance(wrapper.get("schema"), dict):
            raise ValueError('a "json_schema" response_format needs json_schema.schema, an object')
    return value


def llama_server_fields(response_format: dict[str, Any] | None) -> dict[str, Any]:
    """What to add to a ``/v1/completions`` body for ``llama-server`` to apply
    ``response_format``: its ``json_schema`` field. Its completions endpoint reads no
    ``response_format`` (only its chat endpoint translates one), but every endpoint reads
    ``json_schema``, where ``{}`` means any object. Raises ``ValueError`` for a type that
    llama.cpp has no JSON-schema equivalent of."""
    if response_format is None or response_format["type"] == "text":
        return {}
    if response_format["type"] == "json_object":
        return {"json_schema": response_format.get("schema") or {}}
    if response_format["type"] == "json_schema":
        return {"json_schema": response_format["json_schema"]["schema"]}
    raise ValueError(f"llama-server has no equivalent of response_format {response_format!r}")
