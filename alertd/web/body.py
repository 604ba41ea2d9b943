"""Reading a request body under a size cap: the one rule the push endpoint and self-service share.

A declared ``Content-Length`` over the cap is refused before a byte is read, and a body
that streams past the cap is refused as soon as it does: nothing beyond ``limit`` bytes is
ever buffered, whatever the client claims.
"""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["BodyTooLarge", "read_bounded"]


class BodyTooLarge(Exception):
    """The body is (or says it is) longer than the cap; each caller answers in its own words."""


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes.

    A ``Content-Length`` that is not a number is not judged here (the stream still is);
    a caller that refuses such requests checks the header first.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
