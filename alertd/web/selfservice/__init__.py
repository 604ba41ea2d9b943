"""Residents subscribe themselves: a small web page and JSON API with double opt-in.

Wiring (see :func:`alertd.run.app.run_app`): build one
:class:`~alertd.web.selfservice.service.SelfService`, pass :func:`routes` to
:func:`alertd.web.create_app` and :func:`attach` the service to the app (the
routes read it from ``app.state.selfservice``). The dispatcher takes
``service.footer_for`` to add "Manage or leave: <link>" under every message to a
self-service subscriber.

Modules: ``service`` (the operations), ``api`` (JSON), ``pages`` (HTML),
``safety`` (channel building, SSRF checks, rate limits, CSRF), ``store`` (SQL),
``topics`` (the public topics of a place: follow without personal data),
``i18n`` (every word, Ukrainian and English).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from alertd.web.selfservice.api import api_routes
from alertd.web.selfservice.openapi import openapi_routes
from alertd.web.selfservice.pages import page_routes
from alertd.web.selfservice.service import SelfService
from alertd.web.selfservice.topics import topic_routes

__all__ = ["SelfService", "attach", "routes"]


def routes() -> list[BaseRoute]:
    """Every self-service route (pages and API)."""
    return [*page_routes(), *api_routes(), *topic_routes(), *openapi_routes()]


def attach(app: Starlette, service: SelfService) -> Starlette:
    """Make ``service`` available to the routes (``request.app.state.selfservice``)."""
    app.state.selfservice = service
    return app
