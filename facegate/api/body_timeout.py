"""A request body that stops arriving is cut off: a client that sends the headers and half a
photo, then nothing, would otherwise hold a connection and a worker thread for ever.

A plain ASGI wrapper around ``receive``: each body chunk must arrive within
``FACEGATE_BODY_TIMEOUT_S`` of the previous one, or the request ends with 408. (Slow headers
are not seen by the application at all; uvicorn has no header timeout, so a server facing the
internet belongs behind a proxy that has one, such as nginx's ``client_header_timeout``.)
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY = (b'{"type":"about:blank","title":"Request Timeout","status":408,"code":"body_timeout",'
         b'"detail":"the request body stopped arriving; send it again in one go"}')


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        state = {"started": False, "timed_out": False}

        async def timed_receive() -> Message:
            try:
                return await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                # Answer 408 now, then tell the app the client is gone so it stops waiting;
                # whatever it sends after that is dropped.
                if not state["started"]:
                    state["started"] = True
                    await send({"type": "http.response.start", "status": 408, "headers": [
                        (b"content-type", b"application/problem+json"), (b"connection", b"close"),
                        (b"content-length", str(len(_BODY)).encode())]})
                    await send({"type": "http.response.body", "body": _BODY})
                state["timed_out"] = True
                return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            if state["timed_out"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)
