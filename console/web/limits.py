"""A hard cap on request bodies, enforced before and while they are read (uploads included)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """Pure ASGI middleware: refuse a declared Content-Length over the limit at once, and stop reading a
    chunked body the moment it passes the limit; either way the answer is a 413 page, whatever the app
    behind made of the aborted read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                await _refuse(send, self.max_bytes)
                return
        seen = 0
        overflow = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, overflow
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    overflow = True
                    raise HTTPException(
                        413, f"upload refused: request body over the {_mib(self.max_bytes)} limit"
                    )
            return message

        async def guarded_send(message: Message) -> None:
            # After an overflow, whatever the app makes of the aborted read (form parsers turn it into a
            # 400, an unhandled error into a 500) is dropped: the answer is the 413 below.
            nonlocal started
            if overflow:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            await _refuse(send, self.max_bytes)


def _mib(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:g} MiB"
    return f"{n / 1024:g} KiB" if n >= 1024 else f"{n} bytes"


async def _refuse(send: Send, max_bytes: int) -> None:
    body = (
        "<!doctype html><title>Upload too large</title>"
        f"<p>error: upload refused: request body over the {_mib(max_bytes)} limit</p>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
