"""Delivery priority (DESIGN §10): which queued notice goes out first when not all can go at once.

Order, best first:

0. starts of the kinds that give seconds to act (``urgent`` in the kinds table: air raid,
   missiles, drones);
1. other starts;
2. ends (and cancellations);
3. advisories and other item-feed notices;
4. confirmations and tests.

Within a level, broadcast topics (one post reaches everyone who follows a place)
go before individual channels. The number is what the outbox is ordered by;
lower goes first. Pure: a function of the event and whether the row is a topic.
"""

from __future__ import annotations

from alertd.core.kinds import kind_words
from alertd.core.model import AlertEvent, EventStatus

__all__ = ["delivery_priority", "level_of"]

START, OTHER_START, END, ADVISORY, TEST = range(5)


def level_of(event: AlertEvent, *, test: bool = False) -> int:
    """The priority level (0 = most urgent) of ``event``'s notice."""
    if test:
        return TEST
    if event.status == EventStatus.STARTED:
        return START if kind_words(event.kind).urgent else OTHER_START
    if event.status in (EventStatus.ENDED, EventStatus.CANCELLED):
        return END
    return ADVISORY


def delivery_priority(event: AlertEvent, *, topic: bool = False, test: bool = False) -> int:
    """Sort key of one outbox row: ``2 × level``, minus one for a topic (topics first within a level)."""
    return 2 * level_of(event, test=test) + (0 if topic else 1)
