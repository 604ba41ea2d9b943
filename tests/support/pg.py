"""A throwaway PostgreSQL cluster for the tests: the real server from the installed binaries.

One cluster per test session (``initdb`` takes a second or two), one fresh database per
test (``CREATE DATABASE … TEMPLATE``: a few tens of milliseconds), so tests never see
each other's rows. The cluster listens on 127.0.0.1 on a free port only, trusts local
connections, and runs with ``fsync=off``: nothing here has to survive a power cut.

PostgreSQL refuses to run as root. When the tests run as root (CI does), the server
runs as the ``postgres`` system user (created by Debian's package) or, failing that,
``nobody``, through ``runuser``; its data directory is a temporary folder owned by
that user. As any other user the binaries simply run as that user.

Where the binaries live: ``$ALERTD_PG_BIN`` if set, else the newest
``/usr/lib/postgresql/<version>/bin`` (Debian), else ``initdb`` on ``$PATH``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``, or None when PostgreSQL is not installed."""
    env = os.environ.get("ALERTD_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").is_file() else None
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The unprivileged account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


class PgCluster:
    """A running throwaway cluster. ``start()`` / ``stop()`` / ``restart()``; ``url(db)`` for clients."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="alertd-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")

    # -- process control -----------------------------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}\n{self.tail()}"
            )
        return result

    def _options(self) -> str:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "64MB",
        }
        return " ".join(f"-c {k}={v}" for k, v in settings.items())

    def start(self) -> None:
        """Start on a free port (a few tries: another process may take the port we picked)."""
        for _ in range(5):
            if not self.port:
                self.port = _free_port()
            result = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                "-o", self._options(), check=False,
            )  # fmt: skip
            if result.returncode == 0:
                return
            self.port = 0
        raise RuntimeError(f"PostgreSQL did not start:\n{self.tail()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data), check=False)

    def restart(self) -> None:
        """``pg_ctl restart`` (fast shutdown: every client connection is cut, as in a real failover)."""
        self._run(
            "pg_ctl", "restart", "-w", "-t", "60", "-m", "fast", "-D", str(self.data), "-l", str(self.log),
            "-o", self._options(),
        )  # fmt: skip

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # -- databases -----------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PgCluster | None:
    """A started cluster, or None when PostgreSQL's server binaries are not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return None
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def pg_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    if find_bin_dir() is None:
        return (
            "PostgreSQL server binaries not found (Debian: apt-get install postgresql; or set ALERTD_PG_BIN)"
        )
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg / psycopg-pool not installed (pip install -e '.[postgres]')"
    return None
