"""The OpenAPI 3.1 document of the self-service JSON API, served at ``/api/openapi.json``.

Written by hand, next to the handlers in :mod:`alertd.web.selfservice.api` and
:mod:`alertd.web.selfservice.topics`, and kept true by tests: every ``/api`` route
of the app is documented with its methods (and nothing else is), and schemathesis
drives the real app from this document, checking that every answer matches the
documented status codes and schemas and that none is a 5xx.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["document", "openapi_routes"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_LANG = {
    "name": "lang",
    "in": "query",
    "required": False,
    "description": "Language of messages and names; else the body's language or Accept-Language.",
    "schema": {"type": "string", "enum": ["uk", "en"]},
}
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The management token from the confirmation answer.",
    "schema": {"type": "string"},
}
_BEARER: list[dict[str, list[str]]] = [{"adminToken": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Invalid input (the field and a localized message say which)",
        401: "Missing or wrong admin token",
        403: "Refused: cross-site request, or administration disabled",
        404: "Not found",
        409: "Already confirmed",
        410: "The code expired",
        413: "Body too large",
        415: "Content-Type must be application/json",
        429: "Too many requests (rate or in-flight limit)",
        502: "The confirmation could not be sent to the channel",
        503: "Too busy, too many pending subscriptions, or the channel kind is unavailable",
    }
    return {str(s): _json(_ERROR, reasons[s]) for s in statuses}


def document(public_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (``servers`` from ``public_url`` when set)."""
    region = {
        "type": "object",
        "required": ["code", "name", "level", "oblast"],
        "properties": {
            "code": {"type": "string", "examples": ["UA-32", "ua:706"]},
            "name": {"type": "string"},
            "level": {"type": "string"},
            "oblast": {"type": "string", "description": "The oblast's name, empty for an oblast itself."},
        },
    }
    subscription = {
        "type": "object",
        "required": ["id", "status", "regions", "kinds", "language", "channel", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "active", "disabled"]},
            "regions": {"type": "array", "items": {"$ref": "#/components/schemas/Region"}},
            "kinds": {"type": "array", "items": {"type": "string"}},
            "language": {"type": "string"},
            "channel": {
                "type": "object",
                "required": ["kind", "destination"],
                "properties": {
                    "kind": {"type": "string"},
                    "destination": {"type": "string", "description": "Masked."},
                },
            },
            "created_at": {"type": "string", "format": "date-time"},
            "confirmed_at": {"type": ["string", "null"], "format": "date-time"},
            "manage_url": {"type": ["string", "null"]},
        },
    }
    new_subscription = {
        "type": "object",
        "required": ["regions", "kinds", "language", "channel"],
        "properties": {
            "regions": {"type": "array", "items": {"type": "string", "maxLength": 32}, "minItems": 1},
            "kinds": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "language": {"type": "string", "enum": ["uk", "en"]},
            "channel": {
                "type": "object",
                "required": ["kind", "value"],
                "properties": {
                    "kind": {"type": "string", "enum": ["ntfy", "telegram", "email", "sms", "apprise"]},
                    "value": {"type": "string", "maxLength": 1000},
                },
            },
        },
    }
    changes = {
        "type": "object",
        "properties": {
            "regions": {"type": "array", "items": {"type": "string"}},
            "kinds": {"type": "array", "items": {"type": "string"}},
            "language": {"type": "string", "enum": ["uk", "en"]},
        },
    }
    record = {
        "type": "object",
        "required": ["name", "origin", "status", "regions", "kinds"],
        "properties": {
            "name": {"type": "string"},
            "origin": {"type": "string"},
            "status": {"type": "string"},
            "regions": {"type": "array", "items": {"type": "string"}},
            "kinds": {"type": "array", "items": {"type": "string"}},
            "language": {"type": ["string", "null"]},
            "channel": {"type": ["string", "null"], "description": "Masked destination (list only)."},
            "channels": {"type": "integer"},
            "created_at": {"type": ["string", "null"]},
            "urls": {"type": "array", "items": {"type": "string"}, "description": "Export only: secrets."},
        },
    }
    json_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewSubscription"}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "alertd self-service API",
            "version": "1",
            "description": "Residents subscribe themselves to air-alert notifications (double opt-in). "
            "Errors are {error, message, field}; state-changing calls need Content-Type application/json "
            "and, from a browser, the page's own origin.",
        },
        "paths": {
            "/api/regions": {
                "get": {
                    "summary": "Search places by Ukrainian or English name",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "minLength": 2, "maxLength": 100},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 20},
                        },
                        _LANG,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["regions"],
                                "properties": {
                                    "regions": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Region"},
                                    }
                                },
                            },
                            "Matching places",
                        ),
                        **_errors(400),
                    },
                }
            },
            "/api/channels": {
                "get": {
                    "summary": "Channel kinds offered, alert kinds, languages",
                    "parameters": [_LANG],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["channels", "allowed_schemes", "kinds", "languages"],
                                "properties": {
                                    "channels": {"type": "array", "items": {"type": "object"}},
                                    "allowed_schemes": {"type": "array", "items": {"type": "string"}},
                                    "kinds": {"type": "array", "items": {"type": "object"}},
                                    "languages": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "What this server offers",
                        )
                    },
                }
            },
            "/api/topics": {
                "get": {
                    "summary": "Broadcast topics that carry a place's alerts",
                    "parameters": [
                        {"name": "region", "in": "query", "required": True, "schema": {"type": "string"}},
                        _LANG,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["region", "topics"],
                                "properties": {
                                    "region": {"$ref": "#/components/schemas/Region"},
                                    "topics": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                            "The place and its topics",
                        ),
                        **_errors(400, 404),
                    },
                }
            },
            "/api/subscriptions": {
                "post": {
                    "summary": "Subscribe; the code is sent through the channel named",
                    "parameters": [_LANG],
                    "requestBody": json_body,
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["id", "status", "destination", "message"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": {"const": "pending"},
                                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                                    "destination": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                            "Pending; a confirmation code was sent",
                        ),
                        **_errors(400, 403, 413, 415, 429, 502, 503),
                    },
                }
            },
            "/api/subscriptions/confirm": {
                "post": {
                    "summary": "Confirm with the code",
                    "parameters": [_LANG],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id", "code"],
                                    "properties": {"id": {"type": "string"}, "code": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["id", "status", "manage_url"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": {"type": "string"},
                                    "manage_url": {"type": "string"},
                                },
                            },
                            "Active; keep the management link",
                        ),
                        **_errors(400, 403, 404, 409, 410, 413, 415, 429),
                    },
                }
            },
            "/api/manage/{token}": {
                "parameters": [_TOKEN, _LANG],
                "get": {
                    "summary": "Show a subscription",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Subscription"}, "It"),
                        **_errors(404),
                    },
                },
                "patch": {
                    "summary": "Change places, kinds or language",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Changes"}}},
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Subscription"}, "Changed"),
                        **_errors(400, 403, 404, 413, 415),
                    },
                },
                "delete": {
                    "summary": "Leave",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "deleted"}},
                            },
                            "Deleted",
                        ),
                        **_errors(403, 404),
                    },
                },
            },
            "/api/admin/subscribers": {
                "get": {
                    "summary": "All stored subscribers, destinations masked",
                    "security": _BEARER,
                    "parameters": [_LANG],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["subscribers"],
                                "properties": {"subscribers": {"type": "array", "items": record}},
                            },
                            "Subscribers",
                        ),
                        **_errors(401, 403),
                    },
                }
            },
            "/api/admin/subscribers/{name}/disable": {
                "post": {
                    "summary": "Stop routing to one subscriber",
                    "security": _BEARER,
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                        _LANG,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["name", "status"],
                                "properties": {"name": {"type": "string"}, "status": {"const": "disabled"}},
                            },
                            "Disabled",
                        ),
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/admin/export": {
                "get": {
                    "summary": "Everything, channel URLs included: treat it as a secret",
                    "security": _BEARER,
                    "parameters": [_LANG],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["subscribers"],
                                "properties": {"subscribers": {"type": "array", "items": record}},
                            },
                            "Export",
                        ),
                        **_errors(401, 403),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message", "field"],
                    "properties": {
                        "error": {"type": "string", "description": "A stable code, e.g. bad_json."},
                        "message": {"type": "string", "description": "Localized."},
                        "field": {"type": ["string", "null"]},
                    },
                },
                "Region": region,
                "Subscription": subscription,
                "NewSubscription": new_subscription,
                "Changes": changes,
            },
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
    if public_url:
        doc["servers"] = [{"url": public_url}]
    return doc


async def openapi_json(request: Request) -> Response:
    svc = getattr(request.app.state, "selfservice", None)
    return JSONResponse(
        document(svc.public_url if svc is not None else None),
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def openapi_routes() -> list[Route]:
    return [Route("/api/openapi.json", openapi_json, methods=["GET"])]
