"""Rate limits at the edge: failed authentications per client address, and the recognition
routes per API key (or client address), answered with 429 and Retry-After.

Why here and not in the service: a limit is about who is knocking on the HTTP door, and the
client address and key exist only at this edge. The windows are kept in memory (the
``limits`` package's moving windows), per server process: with N workers a client gets N
times the allowance, which still bounds a guessing attack. Guessing one person's password is
bounded separately by the account lockout, which counts per source (workflows.accounts).
"""

from __future__ import annotations

import hashlib
import math
import re
import time

from fastapi import FastAPI, Request, Response
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.api.deps import SESSION_COOKIE, api_key_of
from facegate.api.errors import problem
from facegate.config import Settings

# The routes that run a face model per request: what a flood would exhaust.
RECOGNITION = re.compile(
    r"^/api/v1/(detect|galleries/[^/]+/(identify|quality|access/check|login(/face)?|accounts|"
    r"subjects/[^/]+/(verify|enroll|enroll-video)|exam-sessions/[^/]+/(checkin|reverify)))$"
)


PASSWORD_LOGIN = re.compile(r"^/api/v1/(auth/operator/login|galleries/[^/]+/login)$")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def caller_key(request: Request) -> str:
    """Who is calling, for the recognition limit: a hash of the key (never the key itself),
    the session cookie, else the client address."""
    secret = api_key_of(request.headers) or request.cookies.get(SESSION_COOKIE)
    if secret:
        return "key:" + hashlib.sha256(secret.encode()).hexdigest()[:24]
    return "addr:" + client_address(request)


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.auth_failures: list[RateLimitItem] = parse_many(settings.rate_limit_auth_failures)
        self.recognition: list[RateLimitItem] = parse_many(settings.rate_limit_recognition)

    def _exhausted(self, items: list[RateLimitItem], who: str) -> float | None:
        """Seconds until ``who`` may try again, or None when no limit is reached."""
        for item in items:
            if not self.limiter.test(item, who):
                reset, _ = self.limiter.get_window_stats(item, who)
                return max(1.0, reset - time.time())
        return None

    def _hit(self, items: list[RateLimitItem], who: str) -> None:
        for item in items:
            self.limiter.hit(item, who)

    def before(self, request: Request) -> float | None:
        """Retry-After seconds when this request must be refused before it runs: a password
        login from an address over its failure limit (argon2 is slow on purpose: no free
        guesses), or a recognition route over the caller's limit."""
        if not self.enabled or not request.url.path.startswith("/api/v1/"):
            return None
        wait = None
        if request.method == "POST" and PASSWORD_LOGIN.match(request.url.path):
            wait = self._exhausted(self.auth_failures, "authfail:" + client_address(request))
        if wait is None and request.method == "POST" and RECOGNITION.match(request.url.path):
            who = "recog:" + caller_key(request)
            wait = self._exhausted(self.recognition, who)
            if wait is None:
                self._hit(self.recognition, who)
        return wait

    def after(self, request: Request, status: int) -> float | None:
        """Count a failed authentication; Retry-After seconds when the address is over its limit
        (its 401 is then answered 429: a guesser learns nothing more, while a person at the same
        address with a valid key or session is not locked out)."""
        if not self.enabled or status != 401 or not request.url.path.startswith("/api/v1/"):
            return None
        who = "authfail:" + client_address(request)
        wait = self._exhausted(self.auth_failures, who)
        if wait is None:
            self._hit(self.auth_failures, who)
        return wait


def _too_many(request: Request, wait: float) -> Response:
    seconds = math.ceil(wait)
    refused = problem(request, 429, "rate_limited", "Too Many Requests",
                      f"too many requests from this client; retry in {seconds} s")
    refused.headers["Retry-After"] = str(seconds)
    return refused


class RateLimitMiddleware:
    """Refuses with 429 before a request runs (:meth:`RateLimits.before`), and turns a 401 into
    a 429 once the address is over its failure limit (:meth:`RateLimits.after`). A plain ASGI
    wrapper (see facegate.api.request_context): the answer is replaced at its start message, and
    the 401's body that follows is dropped."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits.enabled:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        wait = self.limits.before(request)
        if wait is not None:
            await _too_many(request, wait)(scope, receive, send)
            return
        replaced = False

        async def checked_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                after = self.limits.after(request, message["status"])
                if after is not None:
                    replaced = True
                    await _too_many(request, after)(scope, receive, send)
                    return
            if not replaced:
                await send(message)

        await self.app(scope, receive, checked_send)


def install(app: FastAPI, settings: Settings) -> RateLimits:
    limits = RateLimits(settings)
    app.add_middleware(RateLimitMiddleware, limits=limits)
    return limits
