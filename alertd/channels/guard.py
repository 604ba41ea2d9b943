"""Connect-time guard for sends to a URL a resident typed (the raw ``apprise`` channel kind).

Checking a resident's URL when they sign up is not enough (issue 15, item 2):

* **DNS rebinding** — the name is vetted, then Apprise resolves it again and gets
  ``127.0.0.1``;
* **redirects** — a ``307`` to loopback is re-POSTed by ``requests``;
* **other host fields** — ``mailto://…?smtp=127.0.0.1``, ``xmpp``'s ``?xmpp=``.

So the check moves to the one place every library ends up: the socket's
``connect``. Inside :meth:`Guard.run` (a worker thread doing one send) every
connect — whichever library makes it, after whatever DNS answer or redirect —
is checked against :func:`is_forbidden_address` and refused with
:class:`ForbiddenTarget` before a packet leaves. Name resolution in that thread
goes through the guard's resolver (the seam the tests use to play a rebinding
DNS server); an ``AF_UNIX`` connect is always refused.

The same object gives each send a **hard deadline**: ``requests``' timeouts are
per read, so a server dripping one byte every two seconds keeps a thread forever
(and Apprise lets the URL raise them with ``?rto=``/``?cto=``). :meth:`Guard.expire`
(scheduled by :func:`run_guarded` on the event loop) shuts down every socket the
send opened, which ends the blocked read at once and frees the thread.

How it hooks in: :func:`install` replaces ``socket.socket.connect``/``connect_ex``
and ``socket.getaddrinfo`` once per process with wrappers that look at a
thread-local and do nothing else when no guard is active in the calling thread
(the daemon's own polls and deliveries pass straight through). That is the one
process-wide change here; it holds no state of its own.

A second layer: :func:`query_problem` refuses query keys outside a per-scheme
allowlist (no ``smtp``, ``xmpp``, ``rto``, ``cto``, ``method``, ``+header``,
``-param``… unless the operator allows them), and :func:`guard_plugin` turns
Apprise's redirect following off for these channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_QUERY_KEYS",
    "GUARDED_PLUGIN_OPTIONS",
    "METADATA_ADDRESSES",
    "ForbiddenTarget",
    "Guard",
    "GuardExpired",
    "Resolver",
    "guard_plugin",
    "install",
    "is_forbidden_address",
    "query_problem",
    "run_guarded",
]

T = TypeVar("T")

#: getaddrinfo-shaped: (host, port, family, type, proto, flags) -> addrinfo list.
Resolver = Callable[..., list[tuple[Any, ...]]]

#: Cloud instance-metadata endpoints (also caught as link-local / unique-local; listed to be explicit).
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

#: Query keys a resident's raw URL may carry, for every scheme (presentation only: no host, no
#: timeout, no method, no header, no TLS switch). The operator adds more per scheme
#: (``selfservice.allowed_query_keys``).
DEFAULT_QUERY_KEYS = frozenset({"format", "overflow", "emojis", "priority", "tags", "title", "image"})

#: Apprise plugin attributes for guarded channels: never follow a redirect (see :func:`guard_plugin`).
GUARDED_PLUGIN_OPTIONS: Mapping[str, Any] = {"redirects": False}


class ForbiddenTarget(ConnectionRefusedError):
    """A guarded send tried to reach a non-public address (or a Unix socket)."""


class GuardExpired(TimeoutError):
    """A guarded send ran past its deadline; its sockets were shut down."""


def is_forbidden_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for anything but a plain public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip in METADATA_ADDRESSES
        or not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def query_problem(url: str, allowed: Iterable[str] = ()) -> str | None:
    """The first query key of ``url`` outside :data:`DEFAULT_QUERY_KEYS` plus ``allowed``, else None.

    Keys compare case-insensitively; ``+name``/``-name``/``:name`` (Apprise's
    custom header, parameter and payload keys) are allowed only when listed exactly.
    """
    try:
        query = urlsplit(url).query
    except ValueError:
        return "unparsable URL"
    permitted = {k.lower() for k in DEFAULT_QUERY_KEYS} | {k.lower() for k in allowed}
    for pair in query.replace(";", "&").split("&"):
        if not pair:
            continue
        key = unquote(pair.partition("=")[0]).strip()  # not unquote_plus: "+" starts a header key
        if key.lower() not in permitted:
            return key[:40] or "(empty)"
    return None


def guard_plugin(plugin: Any) -> Any:
    """Set :data:`GUARDED_PLUGIN_OPTIONS` on a loaded Apprise plugin (None passes through)."""
    if plugin is not None:
        for name, value in GUARDED_PLUGIN_OPTIONS.items():
            setattr(plugin, name, value)
    return plugin


# -- the per-thread guard ---------------------------------------------------------------------------

_state = threading.local()
_install_lock = threading.Lock()
_real: dict[str, Any] = {}


def _active() -> Guard | None:
    return getattr(_state, "guard", None)


class Guard:
    """One guarded send: address checks, a resolver seam, and the sockets to cut at its deadline.

    ``allow_private`` keeps the deadline but skips the address check (template
    channels, which go to the operator's own hosts; or tests).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        permit: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        # (address, port) pairs the caller vouches for although they are not public: the tests'
        # stand-in for an internet server, which can only live on loopback here.
        self.permit = permit
        self.refused: list[str] = []  # addresses refused, for the log line (no URL)
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._expired = False

    @property
    def expired(self) -> bool:
        return self._expired

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` in this thread with the guard active (install() must have run)."""
        install()
        previous = _active()
        _state.guard = self
        try:
            if self._expired:
                raise GuardExpired("deadline passed before the send started")
            return fn(*args, **kwargs)
        finally:
            _state.guard = previous

    def expire(self) -> None:
        """Cut every socket this send opened (callable from any thread); later connects fail."""
        with self._lock:
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- hooks called by the patched socket functions ---------------------------------------------
    def resolve(self, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        resolver = self.resolver or _real["getaddrinfo"]
        return list(resolver(*args, **kwargs))

    def admit(self, sock: socket.socket, address: Any) -> Any:
        """Check one connect; returns the address to connect to (a name is resolved and pinned)."""
        if self._expired:
            raise GuardExpired("send deadline passed")
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ForbiddenTarget("guarded sends may only use TCP/IP")
        host, port, *rest = address
        try:
            ip = ipaddress.ip_address(str(host).split("%", 1)[0])
        except ValueError:
            # a name handed straight to connect(): resolve it here, check and pin the answer
            infos = self.resolve(host, port, sock.family, socket.SOCK_STREAM)
            if not infos:
                raise ForbiddenTarget("name did not resolve") from None
            host = infos[0][4][0]
            ip = ipaddress.ip_address(str(host).split("%", 1)[0])
        vouched = self.permit is not None and self.permit(str(ip), int(port))
        if not self.allow_private and not vouched and is_forbidden_address(ip):
            self.refused.append(str(ip))
            raise ForbiddenTarget(f"connection to a non-public address ({ip}) refused")
        with self._lock:
            if self._expired:
                raise GuardExpired("send deadline passed")
            self._sockets.append(sock)
        return (host, port, *rest)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    guard = _active()
    if guard is not None:
        address = guard.admit(self, address)
    _real["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    guard = _active()
    if guard is not None:
        address = guard.admit(self, address)
    return int(_real["connect_ex"](self, address))


def _guarded_getaddrinfo(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    guard = _active()
    if guard is not None:
        return guard.resolve(*args, **kwargs)
    return list(_real["getaddrinfo"](*args, **kwargs))


def install() -> None:
    """Put the thread-local checks on ``socket`` (idempotent, thread-safe; a no-op outside a guard)."""
    if _real:
        return
    with _install_lock:
        if _real:
            return
        _real["getaddrinfo"] = socket.getaddrinfo
        _real["connect"] = socket.socket.connect
        _real["connect_ex"] = socket.socket.connect_ex
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = _guarded_getaddrinfo


@contextlib.contextmanager
def active(guard: Guard) -> Iterator[Guard]:
    """``with active(guard):`` — the guard for code already running in a worker thread."""
    install()
    previous = _active()
    _state.guard = guard
    try:
        yield guard
    finally:
        _state.guard = previous


async def run_guarded(
    executor: Executor,
    guard: Guard,
    deadline: float,
    fn: Callable[..., T],
    *args: Any,
    grace: float = 2.0,
) -> T:
    """Run ``fn(*args)`` in ``executor`` under ``guard``; at ``deadline`` seconds its sockets are cut.

    Waits for the thread itself to come back (it does, once its sockets are shut
    down), so a returned call never leaves a thread behind; if a plugin ignores
    its dead sockets for ``grace`` more seconds, :class:`GuardExpired` is raised
    and the thread is left to the bounded pool.
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor, guard.run, fn, *args)
    timer = loop.call_later(deadline, guard.expire)
    try:
        return await asyncio.wait_for(asyncio.shield(future), deadline + grace)
    except TimeoutError:
        guard.expire()
        raise GuardExpired(f"no result within {deadline:g}s") from None
    finally:
        timer.cancel()
