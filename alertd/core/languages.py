"""The languages alertd speaks: one table that config, the CLI, rendering and self-service all read.

Adding a language means one entry here plus its words in :mod:`alertd.core.kinds`,
:mod:`alertd.core.render` and the self-service messages; nothing else lists languages.
"""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["uk", "en"]

#: Every supported language, the default first (Ukrainian: the people alertd is for).
LANGUAGES: tuple[Language, ...] = get_args(Language)

#: What a reader of an unsupported language gets: English is the wider-understood fallback.
FALLBACK: Language = "en"


def language_of(value: str) -> Language:
    """``uk``/``uk-UA``/``UK`` → ``uk``; ``en``, ``en-GB`` → ``en``; anything else → :data:`FALLBACK`."""
    code = value.strip().lower()[:2]
    for language in LANGUAGES:
        if code == language:
            return language
    return FALLBACK
