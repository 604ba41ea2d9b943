"""HTTP plumbing shared by the API and the pages: capped body reading, client address, headers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from alertd.web.selfservice.i18n import pick_language
from alertd.web.selfservice.safety import Refusal, client_address

__all__ = ["client_of", "language_of", "read_body", "secure"]

#: Sent with every self-service answer. The CSP allows only our own script and style
#: files; no-referrer keeps management links (/s/<token>) out of other sites' logs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refusal(400, "bad_json")
        if int(declared) > limit:
            raise Refusal(413, "too_large", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "too_large", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def client_of(request: Request) -> str:
    cfg = request.app.state.selfservice.cfg
    client = request.scope.get("client")
    return client_address(client, request.headers, trust_proxy=cfg.trust_proxy_headers)


def language_of(request: Request, *candidates: object) -> str:
    default = request.app.state.selfservice.settings.language
    values = [c for c in candidates if isinstance(c, str)]
    return pick_language(
        request.query_params.get("lang"),
        *values,
        accept=request.headers.get("accept-language"),
        default=default,
    )
