"""Validation against the OASIS CAP 1.2 XML schema shipped in ``tests/fixtures/cap/CAP-v1.2.xsd``.

Every CAP message a test produces goes through :func:`assert_valid_cap`, so a renderer
change that breaks the standard fails loudly wherever it shows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import xmlschema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "cap" / "CAP-v1.2.xsd"


@functools.cache
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def assert_valid_cap(body: bytes) -> None:
    """Raise with the schema's own explanation when ``body`` is not a valid CAP 1.2 alert."""
    errors = list(cap_schema().iter_errors(body.decode("utf-8")))
    assert not errors, f"invalid CAP 1.2: {errors[0]}\n{body.decode('utf-8')}"
