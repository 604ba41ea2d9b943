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


def _sqlite(tmp_path: Path) -> Iterator[StoreFactory]:
    from alertd.store.sqlite import SQLiteStore

    def make() -> StateStore:
        return SQLiteStore(tmp_path / "state" / "alertd.sqlite3")

    yield make


BACKENDS = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[StateStore] = []
    backend = BACKENDS[request.param](tmp_path)
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
