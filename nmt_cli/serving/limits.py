"""What the server refuses, and how: request bodies too large (413) and invalid requests (400/422).

Every refusal is a JSON body `{"detail": "one line"}`, as FastAPI's own HTTP errors are, and
refuses only the request that caused it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app reads it.

    A declared Content-Length is checked before anything is read; a chunked body is read up to
    the limit, then handed on (or refused) whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if int(declared) > self.max_bytes:  # the server already checked it is a number
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, send: Send) -> None:
        detail = f"the request body is over {self.max_bytes:,} bytes"
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the whole `body` once, then the connection's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """400 for a body that is not JSON, 422 for JSON of the wrong shape; the detail names the field.

    Example: `{"detail": "text.1: Input should be a valid string"}`. A body sent as another
    media type than JSON (curl's default is a form) gets 415, saying so.
    """
    assert isinstance(error, RequestValidationError)
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media != "application/json" and not media.endswith("+json"):
        detail = f"the body must be JSON (Content-Type: application/json), not {media}"
        return JSONResponse({"detail": detail}, status_code=415)
    problems: Sequence[Any] = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        reason = next(p for p in problems if p.get("type") == "json_invalid")
        cause = (reason.get("ctx") or {}).get("error", "")
        return JSONResponse({"detail": f"the body is not valid JSON ({cause})"}, status_code=400)
    detail = "; ".join(f"{field_name(p.get('loc', ()))}: {p.get('msg', '')}" for p in problems)
    return JSONResponse({"detail": detail}, status_code=422)


def field_name(loc: Sequence[str | int]) -> str:
    """("body", "text", 1) -> "text.1"; the body itself -> "body"."""
    parts = [str(p) for p in loc[1:]] if loc and loc[0] == "body" else [str(p) for p in loc]
    return ".".join(parts) or "body"
