"""``alertd`` as a real child process, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alertd.run.fetch import no_proxy_with_loopback


def alertd_env() -> dict[str, str]:
    """This environment minus ALERTD_* (a developer's own settings must not leak in), unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # the stand-ins are on 127.0.0.1: a proxy in the developer's environment must not catch them
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = no_proxy_with_loopback(env.get(name))
    return env


class AlertdProcess:
    """``alertd run`` in the background, stderr to a file (a full pipe would block it)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertd", "run", "--config", str(config)],
            env=alertd_env(),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def signal(self, sig: int, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit code."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()
