"""Kept-alive connections for sends: one ``requests`` session per service host, shared by the send threads.

Why: Apprise's plugins send with ``requests.post()`` (and ``get``/``put``/
``request``), which builds a new ``Session`` and opens a new TCP connection — and
for every real service a new TLS handshake — for each message, then throws it
away. A fan-out of 10,000 messages to one Telegram or ntfy host paid 10,000
handshakes. Here every message to a host goes over the connections earlier
messages to that host left open (issue 12: a faster dispatcher). On loopback,
with no TLS at all, that alone was ≈ 1.3 × the deliveries per second; a
handshake over the internet costs far more than a loopback connect.

Second, ``requests`` reads the proxy variables out of the whole environment
twice per request (``get_environ_proxies``: a quarter of a send's CPU under
cProfile) and looks for ``~/.netrc`` and ``~/_netrc`` on disk at every request.
:class:`HostSession` asks the environment and ``.netrc`` once per origin and keeps
the answers for the session's life (``IDLE_SECONDS`` after its last send at
most; the daemon's environment does not change while it runs). Its ``request``
builds the prepared request and hands it to the adapter itself, skipping
``Session``'s per-call merging of cookies, hooks and settings a cookie-less host
session never has (64 send threads, one loopback host: 1,040 → 1,529 sends/s).

What stays as ``requests.post()`` has it: proxies and ``no_proxy`` from the
environment, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``.netrc``, each
request's own timeout, ``verify`` and redirect setting (requests keys its
connection pools by TLS settings, so a ``verify=False`` connection is never
reused for a verified request). What differs, on purpose:

* **No cookies are kept.** A cookie one resident's channel was given must not
  ride along with another resident's message.
* **Idle connections are closed** :data:`IDLE_SECONDS` after a host's last send
  (:meth:`KeepAlive.reap`, and at the next send at the latest), so a connection
  a NAT box forgot in between is never written to, and no idle socket is held
  for hours between alerts.
* **Guarded sends never use it.** A resident's raw URL is checked at every
  socket connect (:mod:`alertd.channels.guard`); a kept connection was opened
  for someone else's channel and would skip that check, so those sends go the
  plain way, one connection each.

How it hooks in: :func:`install` replaces ``requests.api.request`` (which
``requests.post``/``get``/… call) and ``requests.request`` once per process with
a function that looks at a thread-local: inside :meth:`KeepAlive.run` the call
goes to that host's session, anywhere else it is exactly the original. Like
:func:`alertd.channels.guard.install`, the one process-wide change, holding no
state of its own.
"""

from __future__ import annotations

import http.cookiejar
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.api
import requests.utils

__all__ = ["IDLE_SECONDS", "HostSession", "KeepAlive", "install"]

T = TypeVar("T")

#: A host's connections are closed once it has had no send for this long.
IDLE_SECONDS = 30.0

_local = threading.local()
_install_lock = threading.Lock()
_real: dict[str, Callable[..., Any]] = {}


class _Origin(NamedTuple):
    """What ``requests`` reads from the environment for one origin, read once (see HostSession)."""

    proxies: Mapping[str, str]
    bundle: str | None
    netrc: Any  # (user, password) or None


class HostSession(requests.Session):
    """A ``requests.Session`` that keeps no cookies and reads the environment once per origin."""

    def __init__(self, pool_size: int) -> None:
        super().__init__()
        self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size))
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._environ: dict[str, _Origin] = {}
        self._environ_lock = threading.Lock()

    def _environment(self, url: str, no_proxy: str | None) -> _Origin:
        """Proxies, CA bundle and ``.netrc`` credentials for ``url``'s origin as ``requests`` would
        read them; cached per origin."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}|{no_proxy or ''}"
        found = self._environ.get(key)
        if found is None:
            proxies = requests.utils.get_environ_proxies(url, no_proxy=no_proxy)
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = _Origin(dict(proxies), bundle, requests.utils.get_netrc_auth(url))
            with self._environ_lock:
                self._environ[key] = found
        return found

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: Any = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        """``Session.request``, less the per-call work a kept, cookie-less host session never needs.

        The request is prepared from ``requests``' own parts, in ``Session``'s order,
        and sent by the adapter; redirects are followed by ``Session.resolve_redirects``
        as ``Session.send`` does. Anything out of the ordinary (cookies or hooks passed
        in, a proxy, session-wide auth or params) takes ``Session.request`` unchanged.
        """
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        if isinstance(method, bytes):
            method = method.decode("ascii")
        if cookies or hooks or not self.trust_env or self.auth or self.params or self.hooks["response"]:
            return super().request(
                method, url, params=params, data=data, headers=headers, cookies=cookies, files=files,
                auth=auth, timeout=timeout, allow_redirects=allow_redirects, proxies=proxies,
                hooks=hooks, stream=stream, verify=verify, cert=cert, json=json,
            )  # fmt: skip
        prep = requests.PreparedRequest()
        prep.prepare_method(method.upper())
        prep.prepare_url(url, params or "")  # "": no parameters, without requests' Protocol checks
        merged = requests.structures.CaseInsensitiveDict(self.headers)
        for key, value in (headers or {}).items():
            merged[key] = value
        prep.prepare_headers({k: v for k, v in merged.items() if v is not None})
        prep._cookies = requests.cookies.RequestsCookieJar()
        prep.prepare_body(data or {}, files, json)
        target = str(prep.url)
        proxies = proxies or {}
        origin = self._environment(target, proxies.get("no_proxy"))
        prep.prepare_auth(auth or origin.netrc, target)
        prep.hooks = requests.hooks.default_hooks()
        settings = self._settings(origin, proxies, stream, verify, cert)
        if settings["proxies"]:
            return self.send(prep, timeout=timeout, allow_redirects=allow_redirects, **settings)
        adapter = self.get_adapter(target)
        response = adapter.send(prep, timeout=timeout, **settings)
        if response.is_redirect:
            kwargs = dict(settings, timeout=timeout)
            if allow_redirects:
                history = list(self.resolve_redirects(response, prep, **kwargs))
                if history:
                    history.insert(0, response)
                    response = history.pop()
                    response.history = history
            else:
                following = self.resolve_redirects(response, prep, yield_requests=True, **kwargs)
                response._next = cast(requests.PreparedRequest | None, next(following, None))
        if not settings["stream"]:
            response.content  # noqa: B018 - read the body now, as requests does, so the connection goes back
        return response

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """``requests.Session.merge_environment_settings`` with the environment read once per origin."""
        if not self.trust_env:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        return self._settings(self._environment(str(url), no_proxy), proxies, stream, verify, cert)

    def _settings(self, origin: _Origin, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        """The request's settings over the origin's environment and the session's own."""
        proxies = dict(proxies or {})
        for key, value in origin.proxies.items():
            proxies.setdefault(key, value)
        if (verify is True or verify is None) and origin.bundle:
            verify = origin.bundle
        if self.proxies:
            proxies = requests.sessions.merge_setting(proxies, self.proxies)
        else:  # requests.sessions.merge_setting against no session proxies
            proxies = {k: v for k, v in proxies.items() if v is not None}
        return {
            "proxies": proxies,
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }


@dataclass
class _Entry:
    session: HostSession
    last: float  # when its last send ended (or it was opened), on the KeepAlive's clock
    inflight: int = 0

    def stale(self, now: float, idle: float) -> bool:
        """No send running on it, and none for ``idle`` seconds."""
        return self.inflight == 0 and now - self.last >= idle


class KeepAlive:
    """The sessions of one :class:`alertd.channels.sender.Sender`, one per service host.

    ``pool_size``: connections kept per host, at least the sends that may run at
    once to one host (more would be opened and dropped after use).
    """

    def __init__(
        self,
        pool_size: int,
        *,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool_size = max(1, pool_size)
        self.idle = idle
        self._clock = clock
        self._hosts: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.opened = 0  # sessions created, for tests and figures

    def run(self, host: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` in this thread with ``host``'s session behind every ``requests`` call it makes."""
        install()
        entry = self._checkout(host)
        previous = getattr(_local, "session", None)
        _local.session = entry.session
        try:
            return fn(*args, **kwargs)
        finally:
            _local.session = previous
            with self._lock:
                entry.inflight -= 1
                entry.last = self._clock()

    def reap(self) -> int:
        """Close the sessions of hosts idle for :attr:`idle` seconds; returns how many hosts remain open."""
        return self._drop(self.idle)

    def close(self) -> None:
        """Close every idle host's connections (a send still running keeps its own until it returns)."""
        self._drop(0.0)

    def _drop(self, idle: float) -> int:
        now = self._clock()
        with self._lock:
            stale = [h for h, e in self._hosts.items() if e.stale(now, idle)]
            closing = [self._hosts.pop(h).session for h in stale]
            remaining = len(self._hosts)
        for session in closing:
            session.close()
        return remaining

    def __len__(self) -> int:
        return len(self._hosts)

    def _checkout(self, host: str) -> _Entry:
        stale: HostSession | None = None
        with self._lock:
            now = self._clock()
            entry = self._hosts.get(host)
            if entry is not None and entry.stale(now, self.idle):
                stale, entry = entry.session, None
            if entry is None:
                entry = _Entry(HostSession(self.pool_size), last=now)
                self._hosts[host] = entry
                self.opened += 1
            entry.inflight += 1
        if stale is not None:
            stale.close()
        return entry


def _request(method: str, url: str | bytes, **kwargs: Any) -> requests.Response:
    """``requests.request``: through this thread's host session inside :meth:`KeepAlive.run`, else as ever."""
    session: HostSession | None = getattr(_local, "session", None)
    if session is None:
        response: requests.Response = _real["request"](method, url, **kwargs)
        return response
    return session.request(method=method, url=url, **kwargs)


def install() -> None:
    """Route ``requests``' module-level calls through :func:`_request` (idempotent, thread-safe)."""
    if _real:
        return
    with _install_lock:
        if _real:
            return
        _real["request"] = requests.api.request
        requests.api.request = _request
        requests.request = _request
