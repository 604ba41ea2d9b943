"""HTTP plumbing shared by the API and the pages: capped body reading, client key, origin check, headers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from alertd.web.body import BodyTooLarge, read_bounded
from alertd.web.selfservice.i18n import pick_language
from alertd.web.selfservice.safety import Refusal, client_address, client_key

__all__ = ["check_origin", "client_of", "language_of", "read_body", "secure"]

#: Sec-Fetch-Site values of a request the page itself (or the resident typing a URL) made.
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})

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
    if declared is not None and not declared.isdigit():
        raise Refusal(400, "bad_json")
    try:
        return await read_bounded(request, limit)
    except BodyTooLarge:
        raise Refusal(413, "too_large", limit=limit) from None


def client_of(request: Request) -> str:
    """The client as limits count it: its /32 or /64 (see :func:`client_key`), behind ``trusted_proxy_hops``."""
    cfg = request.app.state.selfservice.cfg
    address = client_address(request.scope.get("client"), request.headers, hops=cfg.trusted_proxy_hops)
    return client_key(address, v4_prefix=cfg.client_prefix_v4, v6_prefix=cfg.client_prefix_v6)


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def check_origin(request: Request) -> None:
    """Refuse (403) a state-changing request another site's page made.

    Browsers send ``Sec-Fetch-Site`` (anything but same-origin or none is another
    site; when present it decides) and ``Origin`` on POST/PATCH/DELETE (it must be
    ``public_url``'s origin, or this server's own when no public_url is set). Our
    pages send ``Referrer-Policy: no-referrer``, under which browsers send
    ``Origin: null`` even for the page's own form posts: ``null`` proves nothing
    either way and is left to the CSRF token. A request with neither header —
    curl, an app — is not a browser acting for someone else and passes.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site.lower() not in _SAME_SITE_FETCH:
            raise Refusal(403, "cross_origin")
        return
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    public = request.app.state.selfservice.public_url
    allowed = {_origin_of(public)} if public else set()
    allowed.add(_origin_of(str(request.base_url)))
    if origin.lower().rstrip("/") not in allowed:
        raise Refusal(403, "cross_origin")


def language_of(request: Request, *candidates: object) -> str:
    default = request.app.state.selfservice.settings.language
    values = [c for c in candidates if isinstance(c, str)]
    return pick_language(
        request.query_params.get("lang"),
        *values,
        accept=request.headers.get("accept-language"),
        default=default,
    )
