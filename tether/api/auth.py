"""Bearer-key authentication (wire-contract.md "Auth and base URLs").

Every route but ``/health`` depends on ``ApiKeyAuth``. With no keys configured the server is
open. Keys are compared in constant time, and against every configured key, so neither the
timing of one comparison nor the number made tells which prefix or which key matched.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from tether.api.errors import AuthenticationFailed

_SCHEME = "bearer"


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


class ApiKeyAuth:
    """A FastAPI dependency: raises ``AuthenticationFailed`` (401) unless the key is known."""

    def __init__(self, api_keys: tuple[str, ...]) -> None:
        self._keys = [key.encode() for key in api_keys]

    async def __call__(self, request: Request) -> None:  # async: no threadpool hop
        if not self._keys:
            return
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        if not self.accepts(token):
            raise AuthenticationFailed("Invalid API key provided.")

    def accepts(self, token: str) -> bool:
        candidate = token.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched
