"""Every request's id and every response's security headers, as a plain ASGI wrapper.

Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) runs the rest of the app in a
task group and passes the response through memory streams; FaceGate had four of them, and a
verify over HTTP cost 14 ms more than the same verify in process (bench/scale.py). Plain ASGI
wrappers only look at the messages going by.
"""

from __future__ import annotations

import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=()",
}


class RequestContextMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID``, cut to 64 characters, or a new
    one) in ``request.state.request_id`` and the ``X-Request-ID`` response header, and adds the
    security headers a response does not set itself: no inline script, no framing, no sniffing
    (the admin and self-service pages handle faces)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = (Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex)[:64]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
