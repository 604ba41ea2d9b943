"""The store contract suite's one fixture: ``store_factory``, parametrized by backend.

A backend joins the suite by adding one param here (and what it needs to start);
the tests in ``test_contract.py`` then run against it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alertd.store.base import StateStore

#: Opens a store on this test's database. Each call is a new store object on the *same*
#: data (a second call plays a restart); each test starts from an empty database.
StoreFactory = Callable[[], StateStore]


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    from alertd.store.sqlite import SQLiteStore

    def make() -> StateStore:
        return SQLiteStore(tmp_path / "state" / "alertd.sqlite3")

    yield make


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A fresh database on the session's throwaway PostgreSQL cluster (tests/support/pg.py)."""
    from alertd.store.postgres import PostgresStore

    cluster = request.getfixturevalue("pg_cluster")
    name = cluster.create_database()

    def make() -> StateStore:
        return PostgresStore(cluster.url(name), instance="contract")

    yield make
    cluster.drop_database(name)


BACKENDS = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[StateStore] = []
    backend = BACKENDS[request.param](request, tmp_path)
    make = next(backend)

    def tracked() -> StateStore:
        store = make()
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        store.close()
    next(backend, None)  # the backend's own teardown


@pytest.fixture
def store(store_factory: StoreFactory) -> StateStore:
    return store_factory()
