"""``alertd webhooks register|status|unregister``: the upstream side of pushes (ukrainealarm.com).

ukrainealarm's API documents one webhook endpoint, ``/api/v3/webhook`` beside
``/api/v3/alerts``, with a ``WebHookModel`` body ``{"webHookUrl": "..."}`` and the usual
raw ``Authorization: <token>`` header: ``POST`` subscribes, ``PATCH`` replaces the URL,
``DELETE`` unsubscribes. It has no way to read a registration back, so ``status`` asks
the other end instead: alertd's own push endpoint, through the public URL the upstream
uses (which also proves that URL reaches alertd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from alertd.config import Settings, SourceConfig
from alertd.errors import ConfigError
from alertd.run.poll import request_headers, source_url

__all__ = ["Outcome", "hook_url", "register", "status", "unregister", "webhook_api_url"]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    text: str
    data: dict[str, Any] | None = None


def pushing_source(settings: Settings, name: str) -> SourceConfig:
    """The named source, which must be a ukrainealarm source with a webhook_secret."""
    cfg = next((s for s in settings.sources if s.name == name), None)
    if cfg is None:
        raise ConfigError([f"no source named {name!r}"])
    if cfg.type != "ukrainealarm":
        raise ConfigError([f"source {name}: only ukrainealarm sources push (type is {cfg.type})"])
    if cfg.webhook_secret is None:
        raise ConfigError([f"source {name}: set webhook_secret to receive pushes"])
    if settings.webhooks.public_url is None:
        raise ConfigError(["webhooks.public_url: the URL the upstream reaches alertd at is not set"])
    return cfg


def hook_url(settings: Settings, cfg: SourceConfig, *, masked: bool = False) -> str:
    """``<public_url>/hooks/ukrainealarm/<secret>`` — what the upstream POSTs to."""
    assert cfg.webhook_secret is not None and settings.webhooks.public_url is not None
    secret = cfg.webhook_secret.get_secret_value()
    shown = secret[:3] + "…" if masked else secret
    return f"{settings.webhooks.public_url.rstrip('/')}/hooks/ukrainealarm/{shown}"


def webhook_api_url(cfg: SourceConfig) -> str:
    """``…/api/v3/webhook`` beside the source's ``…/api/v3/alerts``."""
    url = source_url(cfg).rstrip("/")
    if not url.endswith("/alerts"):
        raise ConfigError([f"source {cfg.name}: url does not end in /alerts; cannot find its /webhook"])
    return url[: -len("/alerts")] + "/webhook"


async def _call(
    client: httpx.AsyncClient, method: str, settings: Settings, cfg: SourceConfig
) -> httpx.Response:
    headers = {**request_headers(cfg), "Content-Type": "application/json"}
    return await client.request(
        method, webhook_api_url(cfg), headers=headers, json={"webHookUrl": hook_url(settings, cfg)}
    )


def _failed(what: str, resp: httpx.Response) -> Outcome:
    return Outcome(False, f"{what} refused: HTTP {resp.status_code} {resp.text[:200].strip()}")


async def register(client: httpx.AsyncClient, settings: Settings, name: str) -> Outcome:
    """Subscribe the hook URL (POST); an upstream already holding another URL for this token
    answers 4xx, and then the registration is replaced (PATCH)."""
    cfg = pushing_source(settings, name)
    shown = hook_url(settings, cfg, masked=True)
    resp = await _call(client, "POST", settings, cfg)
    if resp.is_success:
        return Outcome(True, f"registered {shown} with {webhook_api_url(cfg)}")
    if resp.status_code in (401, 403) or resp.status_code >= 500:
        return _failed("registration", resp)
    patched = await _call(client, "PATCH", settings, cfg)
    if patched.is_success:
        return Outcome(True, f"registration replaced: {shown} with {webhook_api_url(cfg)}")
    return _failed("registration", patched)


async def unregister(client: httpx.AsyncClient, settings: Settings, name: str) -> Outcome:
    cfg = pushing_source(settings, name)
    resp = await _call(client, "DELETE", settings, cfg)
    if resp.is_success:
        return Outcome(True, f"unregistered {hook_url(settings, cfg, masked=True)}")
    return _failed("unregistration", resp)


async def status(client: httpx.AsyncClient, settings: Settings, name: str) -> Outcome:
    """Ask alertd's push endpoint, at the public URL, what it has received."""
    cfg = pushing_source(settings, name)
    shown = hook_url(settings, cfg, masked=True)
    try:
        resp = await client.get(hook_url(settings, cfg))
    except httpx.HTTPError as exc:
        return Outcome(False, f"{shown} not reachable: {type(exc).__name__}")
    if resp.status_code != 200:
        return Outcome(
            False, f"{shown} answered HTTP {resp.status_code} (is alertd running with this secret?)"
        )
    try:
        data = resp.json()
    except ValueError:
        return Outcome(False, f"{shown} answered something that is not alertd's status")
    age = data.get("last_push_seconds_ago")
    last = "never" if age is None else f"{age:.0f}s ago"
    text = (
        f"{shown} reachable; pushes received: {data.get('pushes')}, last {last}; "
        f"polling {data.get('polling')} (every {data.get('interval')}s)"
    )
    return Outcome(True, text, data)
