"""The playground: one static page (``tether/api/static``) that chats with this server's own
API from the browser. No CDN and no build step; the page needs no key to load (it holds no
data), and sends the key the user types with each API call."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/playground/assets"


def playground_router() -> APIRouter:
    router = APIRouter()

    async def page() -> FileResponse:
        return FileResponse(STATIC / "playground.html", headers={"Cache-Control": "no-cache"})

    router.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/playground", page, methods=["GET"], include_in_schema=False)
    return router


def assets() -> StaticFiles:
    return StaticFiles(directory=STATIC)
