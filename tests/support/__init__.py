"""Reusable test helpers: local sinks that stand in for the outside world (no internet in tests).

Imported as ``support`` (pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``).
"""

from .sinks import JsonSink, PathBehaviour, Received, SmtpMessage, SmtpSink

__all__ = ["JsonSink", "PathBehaviour", "Received", "SmtpMessage", "SmtpSink"]
