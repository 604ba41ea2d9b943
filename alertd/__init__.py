"""alertd: a civilian air-alert notification daemon."""

__version__ = "0.1.0"
