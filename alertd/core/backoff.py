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


def backoff_delay(attempt: int, *, base: float, cap: float, draw: float) -> float:
    """Seconds to wait after ``attempt`` consecutive failures: full jitter, i.e. uniform(0, ceiling).

    ``draw`` is a uniform random number in [0, 1) (``random.random()``); the delay is
    ``draw * backoff_ceiling(attempt, base=base, cap=cap)``. Full jitter spreads the
    retries of many clients over the whole window instead of synchronising them
    (AWS Architecture Blog, "Exponential Backoff And Jitter"). A ``draw`` outside
    [0, 1] is clamped into it.
    """
    return min(max(draw, 0.0), 1.0) * backoff_ceiling(attempt, base=base, cap=cap)
