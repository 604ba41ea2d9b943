"""Run ``alertd`` under libfaketime with the real monotonic clock (a wall-clock step, as NTP makes).

libfaketime 0.9.10 (Debian 12) with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` makes
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` fail with EINVAL, which is what
``time.sleep`` uses; everything else (epoll timeouts, locks, conditions) works. This
launcher swaps ``time.sleep`` for a ``select`` wait before running the CLI, so the
child behaves as on a machine whose wall clock is stepped while its monotonic clock
runs on. Usage: ``python faketime_run.py run --config …``.
"""

import select
import sys
import time


def _sleep(seconds: float) -> None:
    select.select([], [], [], max(0.0, seconds))


time.sleep = _sleep

from alertd.cli import main  # noqa: E402  (after the patch, so every import sees it)

sys.exit(main(sys.argv[1:]))
