"""Requests and tokens per minute per API key, as Together and every hosted API limits them.

``--rate-limit-rpm`` counts generation requests; ``--rate-limit-tpm`` counts prompt and
generated tokens, charged as the engine reports them, so a request is admitted while its key
has any token budget left in the window and its own tokens may take the count past the limit
(the next request then waits). Both use the ``limits`` library's fixed window of one minute,
kept in memory: per replica, like the prefix cache.

Over a limit: 429 ``rate_limited`` with ``retry-after`` (seconds until the window resets).
Every generation response carries the headers the SDKs read (wire-contract.md "Errors"):
``x-ratelimit-limit`` / ``-remaining`` / ``-reset`` for requests and ``x-tokenlimit-limit`` /
``-remaining`` for tokens.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.requests import HTTPConnection

from tether.api.errors import RateLimited

_NAMESPACE = "tether"


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: the headers for its response, and where its tokens go."""

    headers: dict[str, str]
    charge: Callable[[int], None] | None


class RateLimiter:
    """Per-key request and token budgets; both 0 means no limit and no headers."""

    def __init__(self, rpm: int, tpm: int) -> None:
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._requests: RateLimitItem | None = RateLimitItemPerMinute(rpm) if rpm else None
        self._tokens: RateLimitItem | None = RateLimitItemPerMinute(tpm) if tpm else None

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def admit(self, conn: HTTPConnection) -> Admission:
        """Count one request for the caller's key, or raise ``RateLimited`` (429)."""
        if not self.enabled:
            return Admission({}, None)
        key = _identity(conn)
        headers: dict[str, str] = {}
        requests, tokens = self._requests, self._tokens
        if requests is not None:
            allowed = self._limiter.test(requests, _NAMESPACE, key)
            if allowed:
                self._limiter.hit(requests, _NAMESPACE, key)
            headers.update(self._request_headers(requests, key))
            if not allowed:
                raise self._refusal("requests", requests, key, headers)
        if tokens is None:
            return Admission(headers, None)
        headers.update(self._token_headers(tokens, key))
        if self._remaining(tokens, key) <= 0:
            raise self._refusal("tokens", tokens, key, headers)
        return Admission(headers, self._charger(tokens, key))

    def _charger(self, tokens: RateLimitItem, key: str) -> Callable[[int], None]:
        def charge(count: int) -> None:
            if count > 0:
                # A fixed window counts every hit, also past the limit: exactly what is owed.
                self._limiter.hit(tokens, _NAMESPACE, key, cost=count)

        return charge

    def _remaining(self, item: RateLimitItem, key: str) -> int:
        return int(self._limiter.get_window_stats(item, _NAMESPACE, key).remaining)

    def _reset_s(self, item: RateLimitItem, key: str) -> int:
        reset_at = self._limiter.get_window_stats(item, _NAMESPACE, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _request_headers(self, item: RateLimitItem, key: str) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(item.amount),
            "x-ratelimit-remaining": str(self._remaining(item, key)),
            "x-ratelimit-reset": str(self._reset_s(item, key)),
        }

    def _token_headers(self, item: RateLimitItem, key: str) -> dict[str, str]:
        return {
            "x-tokenlimit-limit": str(item.amount),
            "x-tokenlimit-remaining": str(self._remaining(item, key)),
        }

    def _refusal(
        self, what: str, item: RateLimitItem, key: str, headers: dict[str, str]
    ) -> RateLimited:
        reset_s = self._reset_s(item, key)
        message = (
            f"Rate limit reached: {item.amount} {what} per minute for this API key. "
            f"Retry in {reset_s} s."
        )
        return RateLimited(message, {**headers, "retry-after": str(reset_s)})


def _identity(conn: HTTPConnection) -> str:
    """The caller: its Bearer key (hashed: no secret is kept), else its address."""
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return "key:" + hashlib.sha256(credentials.encode()).hexdigest()[:32]
    return "addr:" + (conn.client.host if conn.client else "unknown")
