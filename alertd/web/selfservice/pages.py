"""The residents' web page: server-rendered HTML that works without JavaScript.

``/`` is one form. Its "Search" button re-submits the form as GET (so what was
already filled in stays), and ``static/app.js``, where it runs, turns typing
into a live search over ``/api/regions`` instead. Every state-changing POST
carries a CSRF token: an HMAC, under the per-install secret, of the nonce in
the ``SameSite=Strict`` cookie (signed double submit). The nonce is issued and
signed by this server — a nonce the client made up is replaced, never signed —
and the cookie is ``__Host-alertd_csrf`` (Secure, no Domain, Path=/) when
``public_url`` is https. POSTs also pass :func:`check_origin`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from alertd.web.selfservice.http import check_origin, client_of, language_of, read_body, secure
from alertd.web.selfservice.i18n import kind_labels, labels, t
from alertd.web.selfservice.safety import Refusal, csrf_token, csrf_valid, issue_nonce, nonce_valid
from alertd.web.selfservice.service import SelfService

__all__ = ["page_routes"]

#: The CSRF cookie: ``__Host-`` (browsers then insist on Secure, Path=/ and no Domain, so no
#: sibling subdomain can plant one) whenever the page is served over https.
SECURE_COOKIE = "__Host-alertd_csrf"
PLAIN_COOKIE = "alertd_csrf"
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

_env = Environment(
    loader=PackageLoader("alertd", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _svc(request: Request) -> SelfService:
    svc: SelfService = request.app.state.selfservice  # set by attach(); Starlette's state is untyped
    return svc


def _cookie_name(svc: SelfService) -> str:
    return SECURE_COOKIE if svc.public_url.startswith("https://") else PLAIN_COOKIE


def _nonce(request: Request) -> tuple[str, bool]:
    """The browser's nonce if this server issued it, else a fresh one (to be set as the cookie)."""
    svc = _svc(request)
    nonce = request.cookies.get(_cookie_name(svc), "")
    if nonce_valid(svc.web.secret(), nonce):
        return nonce, False
    return issue_nonce(svc.web.secret()), True


def _render(request: Request, name: str, lang: str, status: int = 200, **context: Any) -> Response:
    svc = _svc(request)
    nonce, fresh = _nonce(request)
    html = _env.get_template(name).render(
        L=labels(lang),
        lang=lang,
        other_lang="en" if lang == "uk" else "uk",
        path=request.url.path,
        switch_url=request.url.path
        + "?"
        + str(request.url.include_query_params(lang="en" if lang == "uk" else "uk").query),
        csrf=csrf_token(svc.web.secret(), nonce),
        kind_labels=kind_labels(lang),
        follow_topics=bool(svc.settings.topics),  # link places to /topics (alertd.web.selfservice.topics)
        **context,
    )
    response = secure(HTMLResponse(html, status_code=status))
    if fresh:
        response.set_cookie(
            _cookie_name(svc),
            nonce,
            httponly=True,
            samesite="strict",
            secure=svc.public_url.startswith("https://"),
            path="/",
        )
    return response


async def _form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form (capped), after the CSRF check; nothing else is accepted."""
    svc = _svc(request)
    check_origin(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refusal(415, "form_required")
    raw = await read_body(request, svc.cfg.max_body)
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "form_required") from None
    if not csrf_valid(svc.web.secret(), request.cookies.get(_cookie_name(svc)), _one(form, "csrf")):
        raise Refusal(403, "csrf", form_lang=_one(form, "lang"))
    return form


def _one(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def _error_page(request: Request, exc: Refusal, lang: str) -> Response:
    lang = language_of(request, exc.params.get("form_lang"), lang)
    return _render(
        request, "message.html", lang, exc.status, title=t("error_title", lang), error=_msg(exc, lang)
    )


def _msg(exc: Refusal, lang: str) -> str:
    return t(exc.key, lang, **exc.params)


def _picker(svc: SelfService, query: str, selected: list[str], lang: str) -> dict[str, Any]:
    """The region checkboxes: the ones already ticked first, then search results."""
    chosen = svc.region_names(selected, lang)
    found = []
    if len(query.strip()) >= 2:
        found = [
            svc.region_json(r, lang)
            for r in svc.registry.search(query.strip()[:100], 10)
            if r.code not in selected
        ]
    return {"q": query, "chosen": chosen, "found": found, "searched": len(query.strip()) >= 2}


# -- / -------------------------------------------------------------------------------------------


def _index(
    request: Request, lang: str, values: dict[str, list[str]], status: int = 200, error: str | None = None
) -> Response:
    svc = _svc(request)
    kinds = values.get("kinds") if "kinds" in values or "channel" in values else ["air_raid"]
    channels = [
        {"kind": k, "label": t(f"channel_{k}", lang), "hint": t(f"hint_{k}", lang, example=_example(svc))}
        for k in svc.cfg.channels
    ]
    return _render(
        request,
        "index.html",
        lang,
        status,
        picker=_picker(svc, _one(values, "q"), values.get("regions", []), lang),
        kinds=kinds or [],
        language=_one(values, "language") or lang,
        channels=channels,
        channel=_one(values, "channel") or svc.cfg.channels[0],
        value=_one(values, "value"),
        error=error,
    )


def _example(svc: SelfService) -> str:
    scheme = svc.cfg.allowed_schemes[0] if svc.cfg.allowed_schemes else "json"
    return f"{scheme}://example.org/hook"


def _distinct(values: list[str], cap: int) -> list[str]:
    """Each value once, in order, at most ``cap`` of them (a query string may repeat a key 1,500 times)."""
    return list(dict.fromkeys(v[:64] for v in values))[:cap]


async def index(request: Request) -> Response:
    cfg = _svc(request).cfg
    values = {k: _distinct(request.query_params.getlist(k), 32) for k in list(request.query_params)[:32]}
    if "regions" in values:
        values["regions"] = values["regions"][: cfg.max_regions]
    return _index(request, language_of(request), values)


async def subscribe(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        form = await _form(request)
    except Refusal as exc:
        return _error_page(request, exc, lang)
    lang = language_of(request, _one(form, "lang"))
    data = {
        "regions": form.get("regions", []),
        "kinds": form.get("kinds", []),
        "language": _one(form, "language"),
        "channel": {"kind": _one(form, "channel"), "value": _one(form, "value")},
    }
    try:
        row, _ = await svc.create(data, client_of(request))
    except Refusal as exc:
        return _index(request, lang, form, exc.status, error=_msg(exc, lang))
    return RedirectResponse(
        "/confirm?" + urlencode({"id": row.id, "lang": lang, "sent": "1"}), status_code=303
    )


# -- /confirm --------------------------------------------------------------------------------------


async def confirm_page(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    sub_id = request.query_params.get("id", "")[:64]
    row = svc.web.get(sub_id) if sub_id else None
    sent = (
        t("check_code", lang, destination=row.destination_masked) if row and row.status == "pending" else None
    )
    return _render(
        request,
        "confirm.html",
        lang,
        id=sub_id,
        code=request.query_params.get("code", "")[:16],
        sent=sent,
        length=svc.cfg.code_length,
        error=None,
    )


async def confirm_post(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        form = await _form(request)
    except Refusal as exc:
        return _error_page(request, exc, lang)
    lang = language_of(request, _one(form, "lang"))
    try:
        row = await svc.confirm(_one(form, "id"), _one(form, "code"), client_of(request))
    except Refusal as exc:
        return _render(
            request,
            "confirm.html",
            lang,
            exc.status,
            id=_one(form, "id")[:64],
            code="",
            sent=None,
            length=svc.cfg.code_length,
            error=_msg(exc, lang),
        )
    return RedirectResponse(
        f"/s/{row.manage_token}?" + urlencode({"lang": lang, "welcome": "1"}), status_code=303
    )


# -- /s/{token} ------------------------------------------------------------------------------------


def _manage(request: Request, lang: str, token: str, status: int = 200, **extra: Any) -> Response:
    svc = _svc(request)
    try:
        row = svc.by_token(token)
    except Refusal as exc:
        return _error_page(request, exc, lang)
    sub = svc.view(row)
    selected = extra.pop("selected", None) or list(sub.regions)
    return _render(
        request,
        "manage.html",
        lang,
        status,
        sub=sub,
        token=token,
        picker=_picker(svc, request.query_params.get("q", ""), selected, lang),
        kinds=extra.pop("kinds", None) or list(sub.kinds),
        language=sub.language,
        region_names={r["code"]: r["name"] for r in svc.region_names(sub.regions, lang)},
        status_label=t(f"status_{sub.status}", lang),
        channel_label=t(f"channel_{sub.channel_kind}", lang),
        welcome=request.query_params.get("welcome") == "1",
        saved=request.query_params.get("saved") == "1",
        error=extra.pop("error", None),
    )


async def manage_page(request: Request) -> Response:
    return _manage(request, language_of(request), request.path_params["token"])


async def manage_post(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    token = request.path_params["token"]
    try:
        form = await _form(request)
    except Refusal as exc:
        return _error_page(request, exc, lang)
    lang = language_of(request, _one(form, "lang"))
    data = {
        "regions": form.get("regions", []),
        "kinds": form.get("kinds", []),
        "language": _one(form, "language"),
    }
    try:
        svc.update(token, data, client_of(request))
    except Refusal as exc:
        if exc.key == "not_found":
            return _error_page(request, exc, lang)
        return _manage(
            request,
            lang,
            token,
            exc.status,
            error=_msg(exc, lang),
            selected=data["regions"],
            kinds=data["kinds"],
        )
    return RedirectResponse(f"/s/{token}?" + urlencode({"lang": lang, "saved": "1"}), status_code=303)


async def leave(request: Request) -> Response:
    svc, lang = _svc(request), language_of(request)
    try:
        form = await _form(request)
        lang = language_of(request, _one(form, "lang"))
        svc.delete(request.path_params["token"], client_of(request))
    except Refusal as exc:
        return _error_page(request, exc, lang)
    return _render(request, "message.html", lang, title=t("leave_title", lang), info=t("left", lang))


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return Response(status_code=404)
    body = resources.files("alertd").joinpath("static", name).read_bytes()
    response = Response(body, media_type=STATIC[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def page_routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm_page, methods=["GET"]),
        Route("/confirm", confirm_post, methods=["POST"]),
        Route("/s/{token}", manage_page, methods=["GET"]),
        Route("/s/{token}", manage_post, methods=["POST"]),
        Route("/s/{token}/leave", leave, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
