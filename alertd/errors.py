"""alertd's exception tree; every error says what failed and where.

AlertdError
├── ParseError        a payload that cannot be trusted (names source, file/feed, reason)
├── ConfigError       a configuration problem (names file and key)
├── StoreError        the state file is corrupt, locked or unwritable (names the path, carries the cause)
│   ├── StoreLocked   another alertd process already runs on this state (names its PID)
│   ├── StoreUnavailable  a shared database cannot be reached now (transient; nothing was written)
│   ├── TrackerConflict   another instance stepped the tracker since this view was loaded
│   └── LeaseLost     this instance no longer holds the source's poll lease
└── FetchError        an upstream did not give a usable answer (names the source)
"""

from __future__ import annotations


class AlertdError(Exception):
    """Base of every error alertd raises on purpose."""


class ParseError(AlertdError):
    """A payload alertd will not turn into state.

    Raised instead of returning an empty snapshot: an empty snapshot would read
    as "all clear", which is the one lie alertd must never tell.
    """

    def __init__(self, source: str, reason: str, where: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.where = where
        at = f" ({where})" if where else ""
        super().__init__(f"cannot parse {source} payload{at}: {reason}")


class ConfigError(AlertdError):
    """One or more configuration problems, each naming the key at fault."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        self.path = path
        super().__init__("; ".join(problems))


class StoreError(AlertdError):
    """The state store cannot be opened, read or written.

    ``cause`` is the backend's own words for what went wrong ("database or disk is
    full", "database is locked"), never a secondary error raised while cleaning up.
    ``transient`` says a retry soon may succeed (another writer holds the lock).
    """

    def __init__(self, message: str, *, cause: str | None = None, transient: bool = False) -> None:
        self.cause = cause or message
        self.transient = transient
        super().__init__(message)


class StoreLocked(StoreError):
    """Another alertd process already holds this state (one daemon per SQLite file)."""

    def __init__(self, message: str, *, holder_pid: int | None = None) -> None:
        self.holder_pid = holder_pid
        super().__init__(message, cause="locked by another alertd process")


class StoreUnavailable(StoreError):
    """The shared database cannot be reached right now. Nothing was written; try again later.

    The store logs the outage once when it begins and once when it ends; callers retry
    quietly on their own schedule.
    """

    def __init__(self, message: str, *, cause: str | None = None) -> None:
        super().__init__(message, cause=cause, transient=True)


class TrackerConflict(StoreError):
    """Another instance committed a tracker step since this view was loaded: reload and compute again."""

    def __init__(self, message: str) -> None:
        # not transient: the same step would conflict again; the daemon reloads and computes anew
        super().__init__(message, cause="tracker changed by another instance")


class LeaseLost(StoreError):
    """This instance no longer holds the source's poll lease: its step was not committed."""


class FetchError(AlertdError):
    """An upstream request failed: timeout, HTTP error, oversized body, redirect elsewhere.

    ``status`` is the HTTP status when the upstream answered (None for timeouts and
    connection errors); ``retry_after`` the seconds its ``Retry-After`` asked for.
    """

    def __init__(
        self, source: str, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.source = source
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{source}: {reason}")
