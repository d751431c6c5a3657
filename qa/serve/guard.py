"""The guard in front of every route: sign-in, request size, per-client rate, and read-only mode.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which buffers streamed responses such
as Gradio's server-sent events).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

from .policy import Policy

SESSION_COOKIE = "qa_session"
SIGN_IN_PATH = "/signin"
OPEN_PATHS = frozenset({SIGN_IN_PATH, "/favicon.ico"})  # reachable before signing in
# Routes that run a question (or any chat event): these count against the rate limit.
QUESTION_PREFIXES = ("/v1/ask", "/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/",
                     "/gradio_api/api/")
CHANGE_PREFIXES = ("/gradio_api/upload",)  # Gradio's file upload route (and its progress)
UPLOAD_BODY_SLACK = 1.1
CHAT_BODY_BYTES = 1_000_000  # multipart framing around an upload of the allowed size


def session_value(token: str) -> str:
    """The sign-in cookie's value: a keyed hash of the token (the token itself never goes in a cookie)."""
    return hmac.new(token.encode(), b"qa chat session", hashlib.sha256).hexdigest()


def authorized(headers: dict[bytes, bytes], token: str) -> bool:
    """Does a request carry the token (Bearer header) or a valid sign-in cookie?"""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
        return True
    want = session_value(token)
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and hmac.compare_digest(value.encode(), want.encode()):
            return True
    return False


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per client: `burst` questions at once, then `rate` per second.

    Idle clients' buckets are dropped, so memory stays bounded by the clients of the last minute.
    """

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _swept: float = 0.0

    def take(self, client: str) -> float:
        """Spend one question for `client`: 0.0 if allowed, else the seconds until one is allowed."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            if now - self._swept > 60:
                self._sweep(now)
            b = self._buckets.get(client)
            if b is None:
                b = self._buckets[client] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full = self.burst / self.rate  # a bucket idle this long is full again: forget it
        self._buckets = {c: b for c, b in self._buckets.items() if now - b.stamp < full}
        self._swept = now


class BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware applying a Policy to every HTTP request (and websocket) of the wrapped app.

    Args:
        app: the ASGI app behind the guard.
        policy: what is allowed.
        upload_bytes: the largest upload accepted when uploads are allowed.
    """

    def __init__(self, app, policy: Policy, upload_bytes: int = 5_000_000,
                 limiter: RateLimiter | None = None):
        self.app = app
        self.policy = policy
        self.upload_bytes = upload_bytes
        self.limiter = limiter or RateLimiter(policy.rate, policy.burst)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        token = self.policy.token
        if token and path not in OPEN_PATHS and not authorized(headers, token):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            if scope.get("method") == "GET" and b"text/html" in headers.get(b"accept", b""):
                return await _redirect(send, f"{SIGN_IN_PATH}?next={quote(path)}")
            return await _error(send, 401, "sign in first: send 'Authorization: Bearer <token>'",
                                [(b"www-authenticate", b"Bearer")])
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if path.startswith(CHANGE_PREFIXES) and not self.policy.allow_changes:
            return await _error(send, 403, "uploads are turned off on this server")
        if scope.get("method") == "POST" and path.startswith(QUESTION_PREFIXES):
            wait = self.limiter.take(_client(scope, headers))
            if wait > 0:
                return await _error(send, 429, "too many questions; try again shortly",
                                    [(b"retry-after", str(max(1, round(wait))).encode())])
        limit = self._body_limit(path)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _error(send, 413, f"request too large (at most {limit:,} bytes)")
        return await self._limited(scope, receive, send, limit)

    def _body_limit(self, path: str) -> int:
        if path.startswith(CHANGE_PREFIXES):
            return int(self.upload_bytes * UPLOAD_BODY_SLACK) + 100_000
        if path.startswith("/v1/"):
            return self.policy.max_body_bytes
        # The chat's events carry the typed question: room for an over-long one, so the engine can
        # say it is too long instead of the page failing without a word.
        return CHAT_BODY_BYTES

    async def _limited(self, scope, receive, send, limit: int):
        """Run the app, refusing a body (e.g. chunked, without a length) that grows past `limit`."""
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _error(send, 413, f"request too large (at most {limit:,} bytes)")


def _client(scope, headers: dict[bytes, bytes]) -> str:
    """The rate limit's key: the peer address (a proxy in front should pass one address per user)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _error(send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
