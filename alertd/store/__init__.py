"""alertd's persistent state behind one seam.

* :mod:`alertd.store.base` — the :class:`StateStore` protocol and its plain rows.
* :mod:`alertd.store.sqlite` — the embedded default (one SQLite file in ``state_dir``).
* :mod:`alertd.store.runner` — :class:`StoreRunner`: the daemon's one store thread.
* :func:`open_store` — the only place that turns settings into a store. The
  daemon, the CLI and the demo all come through here, so a second backend is
  one branch below plus one module that passes ``tests/store/test_contract.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alertd.store.base import (
    LeaseInfo,
    OutboxItem,
    OutboxRouter,
    OutboxRow,
    OutboxState,
    Outcome,
    SourceCursor,
    StateStore,
    StoredSubscriber,
    WebSubscription,
    channel_key,
)

if TYPE_CHECKING:
    from alertd.config import Settings

__all__ = [
    "LeaseInfo",
    "OutboxItem",
    "OutboxRouter",
    "OutboxRow",
    "OutboxState",
    "Outcome",
    "SourceCursor",
    "StateStore",
    "StoredSubscriber",
    "WebSubscription",
    "channel_key",
    "instance_name",
    "open_store",
    "store_exists",
]


def store_exists(settings: Settings) -> bool:
    """Whether there is state to read yet (``alertd status`` on a fresh install says so instead)."""
    return settings.store.url is not None or settings.db_path.exists()


def instance_name(settings: Settings) -> str:
    """This process's name in a shared store's leases and claims: ``[store] instance`` or host:pid."""
    import os
    import socket

    return settings.store.instance or f"{socket.gethostname()}:{os.getpid()}"


def open_store(
    settings: Settings, *, daemon: bool = False, init: bool = False, busy_timeout: float | None = None
) -> StateStore:
    """Open the configured store.

    ``daemon``: this process is ``alertd run``: it takes the store's single-instance
    lock (a second daemon on the same SQLite file is refused with the holder's PID)
    and uses a short busy timeout (its store thread retries instead of blocking).
    ``init``: start afresh over an empty or unreadable state file (``alertd run --init``).
    Raises :class:`alertd.errors.StoreError` with the reason.
    """
    if settings.store.url is not None:
        from alertd.store.postgres import PostgresStore  # StoreError naming the extra when it is missing

        return PostgresStore(
            settings.store.url.get_secret_value(),
            instance=instance_name(settings),
            claim_lease=settings.store.claim_lease,
        )
    from alertd.store.sqlite import SQLiteStore

    timeout = busy_timeout if busy_timeout is not None else (1.0 if daemon else 10.0)
    return SQLiteStore(settings.db_path, exclusive=daemon, init=init, busy_timeout=timeout)
