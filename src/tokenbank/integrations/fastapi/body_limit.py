"""A route class refusing request bodies over a size limit (413), whether or not they declare their length."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from tokenbank.integrations.fastapi.errors import error_response

MAX_BODY_BYTES = 64 * 1024
"""Request bodies larger than this are refused with 413 (a batch of 1,000 transfers fits in about 120 KiB, so
big batches need ``max_body_bytes=`` raised on purpose)."""


class _BodyTooLarge(HTTPException):
    pass


def body_limited(limit: int) -> type[APIRoute]:
    """A route class answering 413 ``{code, message, param}`` to a body over ``limit`` bytes: at once by its
    Content-Length, or as soon as a streamed body without one (chunked) goes past the limit."""

    def too_large() -> JSONResponse:
        return error_response(413, "request_too_large", f"the request body is larger than {limit} bytes")

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return too_large()
                received = 0
                receive = request.receive

                async def counted() -> Message:
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            raise _BodyTooLarge(413)
                    return message

                try:
                    return await handler(Request(request.scope, counted))
                except _BodyTooLarge:
                    return too_large()

            return limited

    return BodyLimitedRoute


__all__ = ["MAX_BODY_BYTES", "body_limited"]
