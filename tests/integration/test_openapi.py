"""The OpenAPI 3.1 document at /api/openapi.json is true to the app, and schemathesis finds no 5xx.

The route test keeps the document complete (every /api route and method, nothing
more). schemathesis then generates requests from the document — valid and
invalid bodies, odd query strings, path tokens — against the real app and store
and checks every answer: never a server error, a documented status code, a
documented content type, a body matching the documented schema. Bounded:
``MAX_EXAMPLES`` per operation and mode (valid and schema-breaking requests), no deadline per example (the machine is shared).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from alertd.config import load_settings
from alertd.core.regions import RegionRegistry
from alertd.store.sqlite import Store
from alertd.web.selfservice import SelfService, attach, routes
from alertd.web.selfservice.openapi import document
from alertd.web.server import create_app

MAX_EXAMPLES = 25
ADMIN = "admin-token-0123456789abcdef"


def build_app(state_dir: Path) -> tuple[Any, SelfService, Store]:
    registry = RegionRegistry.load()
    settings = load_settings(
        None,
        env={},
        registry=registry,
        state_dir=state_dir,
        selfservice={
            "enabled": True,
            "public_url": "http://testserver",
            "channels": ["ntfy", "telegram", "email", "sms", "apprise"],
            "templates": {
                "telegram": "json://127.0.0.1:9/tg/{chat_id}",
                "email": "json://127.0.0.1:9/mail/{email}",
                "sms": "json://127.0.0.1:9/sms/{phone}",
            },
            "allowed_schemes": ["json"],
            "admin_token": ADMIN,
            "per_client_per_hour": 100000,
            "max_pending": 100000,
            "pending_per_prefix": 100000,
        },
    )

    async def accepted(url: str, title: str, body: str) -> bool:  # the code "arrives": explore further
        return True

    store = Store(settings.db_path)
    service = SelfService(settings, store, registry, sender=accepted)
    app = attach(create_app(settings=settings, store=store, routes=routes()), service)
    return app, service, store


async def test_document_lists_every_api_route_and_method(tmp_path: Path) -> None:
    app, service, store = build_app(tmp_path)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            served = (await http.get("/api/openapi.json")).json()
    finally:
        await service.aclose()
        store.close()
    assert served == document("http://testserver")
    assert served["openapi"] == "3.1.0"
    actual = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in (route.methods or ())
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in served["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == actual


def test_no_server_error_and_answers_match_the_document(tmp_path: Path) -> None:
    """Every operation, ``MAX_EXAMPLES`` generated requests each, through schemathesis' checks."""
    app, _service, store = build_app(tmp_path)
    try:
        api = schemathesis.openapi.from_asgi("/api/openapi.json", app)
        operations = [result.ok() for result in api.get_all_operations()]
        assert len(operations) == 11
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                check_operation(operation, mode)
    finally:
        store.close()


def check_operation(operation: Any, mode: GenerationMode) -> None:
    """Valid requests (positive) and requests that break the schema (negative)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        if case.operation.path.startswith("/api/admin"):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN}"}
        case.call_and_validate(
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ]
        )

    run()
