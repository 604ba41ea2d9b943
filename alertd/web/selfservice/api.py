"""The JSON API (see README "Self-service subscriptions").

State-changing calls must be ``Content-Type: application/json``: a cross-site
HTML form cannot send that, and a cross-site ``fetch`` with it needs a CORS
preflight this server never answers, so the JSON API needs no CSRF token.
Errors are ``{"error": <code>, "message": <localized>, "field": <name|null>}``.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alertd.web.selfservice.http import check_origin, client_of, language_of, read_body, secure
from alertd.web.selfservice.i18n import LANGUAGES, kind_labels, t
from alertd.web.selfservice.safety import Refusal
from alertd.web.selfservice.service import SelfService, Subscription

__all__ = ["api_routes"]


def _svc(request: Request) -> SelfService:
    svc: SelfService = request.app.state.selfservice  # set by attach(); Starlette's state is untyped
    return svc


def _json(body: Any, status: int = 200) -> Response:
    return secure(JSONResponse(body, status_code=status))


def _error(exc: Refusal, lang: str) -> Response:
    body = {"error": exc.key, "message": t(exc.key, lang, **exc.params), "field": exc.field}
    return _json(body, exc.status)


async def _json_body(request: Request) -> dict[str, Any]:
    check_origin(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise Refusal(415, "json_required")
    raw = await read_body(request, _svc(request).cfg.max_body)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, or nested past the parser's depth
        raise Refusal(400, "bad_json") from None
    if not isinstance(data, dict):
        raise Refusal(400, "bad_json")
    return data


def _sub_json(svc: SelfService, sub: Subscription, lang: str) -> dict[str, Any]:
    return {
        "id": sub.id,
        "status": sub.status,
        "regions": svc.region_names(sub.regions, lang),
        "kinds": list(sub.kinds),
        "language": sub.language,
        "channel": {"kind": sub.channel_kind, "destination": sub.destination},
        "created_at": sub.created_at.isoformat(),
        "confirmed_at": sub.confirmed_at.isoformat() if sub.confirmed_at else None,
        "manage_url": sub.manage_url,
    }


async def regions(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    query = request.query_params.get("q", "").strip()
    if not 2 <= len(query) <= 100:
        return _error(Refusal(400, "bad_query", field="q"), lang)
    try:
        limit = max(1, min(20, int(request.query_params.get("limit", "10"))))
    except ValueError:
        limit = 10
    found = svc.registry.search(query, limit)
    return _json({"regions": [svc.region_json(r, lang) for r in found]})


async def channels(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    return _json(
        {
            "channels": [
                {
                    "kind": k,
                    "label": t(f"channel_{k}", lang),
                    "hint": t(f"hint_{k}", lang, example="json://…"),
                }
                for k in svc.cfg.channels
            ],
            "allowed_schemes": list(svc.cfg.allowed_schemes) if "apprise" in svc.cfg.channels else [],
            "kinds": [{"kind": k, "label": label} for k, label in kind_labels(lang).items()],
            "languages": list(LANGUAGES),
        }
    )


async def create(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        data = await _json_body(request)
        lang = language_of(request, data.get("language"))
        row, lang = await svc.create(data, client_of(request))
    except Refusal as exc:
        return _error(exc, lang)
    return _json(
        {
            "id": row.id,
            "status": "pending",
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "destination": row.destination_masked,
            "message": t("check_code", lang, destination=row.destination_masked),
        },
        202,
    )


async def confirm(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        data = await _json_body(request)
        row = await svc.confirm(data.get("id"), data.get("code"), client_of(request))
    except Refusal as exc:
        return _error(exc, lang)
    lang = language_of(request, row.language)
    return _json({"id": row.id, "status": row.status, "manage_url": svc.manage_url(row.manage_token)})


async def manage(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    token = request.path_params["token"]
    try:
        if request.method == "GET":
            return _json(_sub_json(svc, svc.view(svc.by_token(token)), lang))
        if request.method == "DELETE":
            check_origin(request)
            svc.delete(token, client_of(request))
            return _json({"status": "deleted"})
        data = await _json_body(request)
        row = svc.update(token, data, client_of(request))
        return _json(_sub_json(svc, svc.view(row), lang))
    except Refusal as exc:
        return _error(exc, lang)


# -- admin ---------------------------------------------------------------------------------------


def _admin(request: Request) -> None:
    token = _svc(request).cfg.admin_token
    if token is None:
        raise Refusal(403, "admin_disabled")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise Refusal(401, "unauthorized")


def _subscriber_records(svc: Any, *, export: bool) -> list[dict[str, Any]]:
    """Every subscriber for the admin endpoints; only the export carries channel URLs (secrets)."""
    web = {row.subscriber: row for row in svc.web.all()}
    out = []
    for sub in svc.store.subscribers(status=None):
        row = web.get(sub.name)
        record: dict[str, Any] = {
            "name": sub.name,
            "origin": sub.origin,
            "status": sub.status,
            "regions": list(sub.regions),
            "kinds": list(sub.kinds),
            "language": sub.language,
        }
        if export:
            record.update(
                advisories=list(sub.advisories),
                urls=list(sub.urls),
                channel_kind=row.channel_kind if row else None,
                confirmed_at=row.confirmed_at.isoformat() if row and row.confirmed_at else None,
            )
        else:
            record.update(
                channel=row.destination_masked if row else None,
                channels=len(sub.urls),
                created_at=row.created_at.isoformat() if row else None,
            )
        out.append(record)
    return out


async def admin_list(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        _admin(request)
    except Refusal as exc:
        return _error(exc, lang)
    return _json({"subscribers": _subscriber_records(svc, export=False)})


async def admin_disable(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        _admin(request)
        if not svc.disable(request.path_params["name"]):
            raise Refusal(404, "not_found")
    except Refusal as exc:
        return _error(exc, lang)
    return _json({"name": request.path_params["name"], "status": "disabled"})


async def admin_export(request: Request) -> Response:
    """Everything needed to move subscribers elsewhere, channel URLs included: treat the file as a secret."""
    svc, lang = _svc(request), language_of(request)
    try:
        _admin(request)
    except Refusal as exc:
        return _error(exc, lang)
    response = _json({"subscribers": _subscriber_records(svc, export=True)})
    response.headers["Content-Disposition"] = 'attachment; filename="alertd-subscribers.json"'
    return response


def api_routes() -> list[Route]:
    return [
        Route("/api/regions", regions, methods=["GET"]),
        Route("/api/channels", channels, methods=["GET"]),
        Route("/api/subscriptions", create, methods=["POST"]),
        Route("/api/subscriptions/confirm", confirm, methods=["POST"]),
        Route("/api/manage/{token}", manage, methods=["GET", "PATCH", "DELETE"]),
        Route("/api/admin/subscribers", admin_list, methods=["GET"]),
        Route("/api/admin/subscribers/{name}/disable", admin_disable, methods=["POST"]),
        Route("/api/admin/export", admin_export, methods=["GET"]),
    ]
