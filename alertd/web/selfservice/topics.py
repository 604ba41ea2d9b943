"""Follow a place without giving us any personal data: the public topics, as a page and as JSON.

``GET /topics?region=ua:706`` shows, for one place, each broadcast topic that
carries every alert covering it (see :mod:`alertd.core.topics`) as a link and a
QR code (inline SVG from ``segno``; no JavaScript, nothing loaded from elsewhere).
``GET /topics?q=Ірпінь`` finds the place first. ``GET /api/topics?region=ua:706``
returns the same data as JSON.

Nothing is stored and nothing is sent: there is no confirmation and no rate
limit here, and the page never shows a topic's Apprise URL (it may hold a bot
token) — only the public ``follow`` link derived from it or configured.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alertd.core.regions import RegionRegistry
from alertd.core.route import topic_bindings
from alertd.core.topics import TopicBinding, for_place
from alertd.web.selfservice.api import _error, _json
from alertd.web.selfservice.http import language_of
from alertd.web.selfservice.i18n import t
from alertd.web.selfservice.pages import _render
from alertd.web.selfservice.safety import Refusal
from alertd.web.selfservice.service import SelfService

__all__ = ["TopicDirectory", "topic_routes"]

#: QR codes kept (one per public link); a city has ~1,500 places, a page shows a few.
QR_CACHE_SIZE = 2048


class TopicDirectory:
    """The public face of the configured topics: per place, the links residents open, with QR codes.

    Built once per process from the settings (topics come from the config file only).
    """

    def __init__(self, bindings: list[TopicBinding], registry: RegionRegistry) -> None:
        # Only bindings with a public link: a private chat id or an unknown service has nothing to show.
        self._bindings = [b for b in bindings if b.follow]
        self._registry = registry
        self._qr: OrderedDict[str, str] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._bindings)

    def for_place(self, code: str, lang: str) -> list[dict[str, Any]]:
        """What a resident of ``code`` follows: one entry per topic section covering the place."""
        out = []
        for b in for_place(self._bindings, self._registry, code):
            place = self._registry.get(b.place)
            link = b.follow or ""
            out.append(
                {
                    "topic": b.topic,
                    "place": b.place,
                    "place_name": place.name(lang) if place is not None else b.place,
                    "service": _service(link),
                    "link": link,
                    "qr_svg": self.qr_svg(link, t("follow_qr", lang, link=link)),
                }
            )
        return out

    def qr_svg(self, link: str, title: str) -> str:
        """The link as an inline SVG QR code (dark on white, so it scans in dark mode too)."""
        key = f"{title}\x00{link}"
        svg = self._qr.get(key)
        if svg is None:
            svg = segno.make(link, error="m").svg_inline(
                scale=4, dark="#000", light="#fff", title=title, svgclass="qr", lineclass=None
            )
            self._qr[key] = svg
            if len(self._qr) > QR_CACHE_SIZE:
                self._qr.popitem(last=False)
        return svg


def _service(link: str) -> str:
    return "telegram" if link.startswith("https://t.me/") else "ntfy" if "/" in link else "link"


def _svc(request: Request) -> SelfService:
    svc: SelfService = request.app.state.selfservice  # set by attach(); Starlette's state is untyped
    return svc


def directory(request: Request) -> TopicDirectory:
    """The app's directory, built on first use from the self-service's settings and registry."""
    found = getattr(request.app.state, "topics", None)
    if found is None:
        svc = _svc(request)
        found = TopicDirectory(topic_bindings(svc.settings, svc.registry), svc.registry)
        request.app.state.topics = found
    return found


def _place(request: Request, lang: str) -> tuple[dict[str, str] | None, list[dict[str, Any]]]:
    """The requested place (as the region API shows it) and its topics; 404 for an unknown code."""
    code = request.query_params.get("region", "").strip()[:32]
    if not code:
        return None, []
    svc = _svc(request)
    region = svc.registry.get(code)
    if region is None:
        raise Refusal(404, "unknown_region", field="region", code=code)
    return svc.region_json(region, lang), directory(request).for_place(code, lang)


async def topics_api(request: Request) -> Response:
    lang = language_of(request)
    try:
        region, topics = _place(request, lang)
        if region is None:
            raise Refusal(400, "unknown_region", field="region", code="")
    except Refusal as exc:
        return _error(exc, lang)
    return _json({"region": region, "topics": topics})


async def topics_page(request: Request) -> Response:
    lang = language_of(request)
    try:
        region, topics = _place(request, lang)
    except Refusal as exc:
        return _render(request, "topics.html", lang, exc.status, error=t(exc.key, lang, **exc.params), q="")
    query = request.query_params.get("q", "").strip()[:100]
    found = []
    if region is None and len(query) >= 2:
        svc = _svc(request)
        found = [svc.region_json(r, lang) for r in svc.registry.search(query, 10)]
    return _render(
        request,
        "topics.html",
        lang,
        region=region,
        topics=topics,
        q=query,
        found=found,
        searched=len(query) >= 2,
        any_topics=bool(directory(request)),
    )


def topic_routes() -> list[Route]:
    return [
        Route("/topics", topics_page, methods=["GET"]),
        Route("/api/topics", topics_api, methods=["GET"]),
    ]
