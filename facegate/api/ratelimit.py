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

from fastapi import FastAPI, Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from facegate.api.errors import problem
from facegate.config import Settings

# The routes that run a face model per request: what a flood would exhaust.
RECOGNITION = re.compile(
    r"^/api/v1/(detect|galleries/[^/]+/(identify|quality|access/check|login(/face)?|accounts|"
    r"subjects/[^/]+/(verify|enroll|enroll-video)|exam-sessions/[^/]+/(checkin|reverify)))$"
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def caller_key(request: Request) -> str:
    """Who is calling, for the recognition limit: a hash of the key (never the key itself),
    the session cookie, else the client address."""
    secret = request.headers.get("x-api-key") or request.cookies.get("fg_session")
    if not secret:
        auth = request.headers.get("authorization", "")
        secret = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
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
        """Retry-After seconds when this request must be refused now."""
        if not self.enabled or not request.url.path.startswith("/api/v1/"):
            return None
        wait = self._exhausted(self.auth_failures, "authfail:" + client_address(request))
        if wait is None and request.method == "POST" and RECOGNITION.match(request.url.path):
            who = "recog:" + caller_key(request)
            wait = self._exhausted(self.recognition, who)
            if wait is None:
                self._hit(self.recognition, who)
        return wait

    def after(self, request: Request, status: int) -> None:
        if self.enabled and status == 401 and request.url.path.startswith("/api/v1/"):
            self._hit(self.auth_failures, "authfail:" + client_address(request))


def install(app: FastAPI, settings: Settings) -> RateLimits:
    limits = RateLimits(settings)

    @app.middleware("http")
    async def rate_limit(request: Request, call_next):
        wait = limits.before(request)
        if wait is not None:
            seconds = math.ceil(wait)
            refused = problem(request, 429, "rate_limited", "Too Many Requests",
                              f"too many requests from this client; retry in {seconds} s")
            refused.headers["Retry-After"] = str(seconds)
            return refused
        response = await call_next(request)
        limits.after(request, response.status_code)
        return response

    return limits
