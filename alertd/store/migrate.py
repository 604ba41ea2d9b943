"""``alertd store migrate --to postgresql://…``: move an SQLite install into PostgreSQL.

Copies every row an install has grown (subscribers, tracker state, the event log,
the outbox and its attempts, self-service rows, cursors, the per-install secret) in
one PostgreSQL transaction, then counts each table on both sides before committing:
a mismatch rolls everything back, so an NGO either has all of its residents in the
new database or none of them (and its SQLite file is never changed).

Deliveries the SQLite daemon left ``sending`` (it was stopped mid-send) arrive as
``pending``: the PostgreSQL instances send them again, as a restart would.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertd.errors import StoreError

#: Copied in this order (no foreign keys, but a reader of a half-copied database is never shown one).
TABLES = (
    "meta",
    "sources",
    "source_alerts",
    "active",
    "events",
    "notices",
    "subscribers",
    "outbox",
    "attempts",
    "web_subscriptions",
    "web_rate",
)
#: identity columns whose sequence must continue after the copied ids
_IDENTITY = {"events": "seq", "outbox": "id"}


@dataclass(frozen=True)
class TableCopy:
    table: str
    source_rows: int
    copied_rows: int


def copy_sqlite_to_postgres(sqlite_path: Path, url: str) -> list[TableCopy]:
    """Copy the SQLite store at ``sqlite_path`` into the (empty) PostgreSQL store at ``url``.

    Raises StoreError when the target already holds alertd rows, when either side
    cannot be opened, or when the counts differ after the copy (nothing is committed then).
    """
    from alertd.store.postgres import PostgresStore

    if not sqlite_path.is_file():
        raise StoreError(f"no SQLite state at {sqlite_path} (check state_dir)")
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        target = PostgresStore(url, instance="migrate")  # creates the schema
        try:
            with target.transaction() as db:
                _refuse_non_empty(db, target.location)
                copies = [_copy_table(src, db, table) for table in TABLES]
                bad = [c for c in copies if c.source_rows != c.copied_rows]
                if bad:
                    raise StoreError(
                        "copy verification failed, nothing was written: "
                        + ", ".join(f"{c.table} {c.source_rows}→{c.copied_rows}" for c in bad)
                    )
            return copies
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StoreError(f"state file {sqlite_path} cannot be read: {exc}") from exc
    finally:
        src.close()


def _refuse_non_empty(db: Any, where: str) -> None:
    for table in ("subscribers", "events", "outbox", "sources"):
        row = db.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        if row and row[0]:
            raise StoreError(
                f"database {where} already holds alertd data ({table}); migrate into an empty one"
            )


def _copy_table(src: sqlite3.Connection, db: Any, table: str) -> TableCopy:
    exists = src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if not exists:
        return TableCopy(table, 0, 0)
    source_cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    types = dict(
        db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        ).fetchall()
    )
    cols = [c for c in source_cols if c in types]
    # the target's own bookkeeping (its schema version, its tracker revision) is not copied
    where = " WHERE key NOT IN ('schema_version', 'tracker_rev')" if table == "meta" else ""
    source_rows = int(src.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()[0])
    booleans = {i for i, c in enumerate(cols) if types[c] == "boolean"}
    state = cols.index("state") if table == "outbox" else -1
    with db.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {', '.join(cols)} FROM {table}{where}"):
            values = list(row)
            for i in booleans:
                values[i] = None if values[i] is None else bool(values[i])
            if state >= 0 and values[state] == "sending":
                values[state] = "pending"
            copy.write_row(values)
    if table in _IDENTITY:
        column = _IDENTITY[table]
        db.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"GREATEST((SELECT MAX({column}) FROM {table}), 1))"
        )
    copied = db.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()
    return TableCopy(table, source_rows, int(copied[0]) if copied else 0)
