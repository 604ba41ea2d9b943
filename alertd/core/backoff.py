"""The one backoff rule alertd uses for retries: capped exponential growth with full jitter.

Pure: the caller passes the random draw, so the function is deterministic and the
randomness (and its seed, in tests) stays with the caller.
"""

from __future__ import annotations

__all__ = ["backoff_ceiling", "backoff_delay"]

#: Doublings beyond this cannot matter (2**62 seconds outlives every cap) and would overflow floats later.
_MAX_DOUBLINGS = 62


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The upper bound after ``attempt`` consecutive failures: ``min(cap, base * 2**(attempt - 1))``.

    ``attempt`` 1 (the first failure) gives ``base``; 0 or less is treated as 1.
    """
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    return min(cap, base * 2.0**doublings)


def backoff_delay(attempt: int, *, base: float, cap: float, draw: float, floor: float = 0.0) -> float:
    """Seconds to wait after ``attempt`` consecutive failures: uniform(floor × ceiling, ceiling).

    ``draw`` is a uniform random number in [0, 1) (``random.random()``); the delay is
    ``ceiling * (floor + (1 - floor) * draw)`` with ``ceiling = backoff_ceiling(attempt, ...)``.

    * ``floor=0`` (the default) is full jitter: polls of a failing upstream spread over the
      whole window instead of synchronising (AWS Architecture Blog, "Exponential Backoff
      And Jitter").
    * ``floor=0.5`` is "equal jitter": never sooner than half the ceiling. Delivery retries
      use it, so a channel's few attempts cannot all be spent within seconds of a short
      outage of its service.

    A ``draw`` or ``floor`` outside [0, 1] is clamped into it.
    """
    floor = min(max(floor, 0.0), 1.0)
    draw = min(max(draw, 0.0), 1.0)
    return backoff_ceiling(attempt, base=base, cap=cap) * (floor + (1.0 - floor) * draw)
