"""A budget for operator templates: bounded work, bounded output (issue 15, item 10).

Jinja's sandbox keeps a template away from Python internals, but not from
``{{ 'a' * 100000000 }}`` (a 100 MB string) or three nested loops over a
100,000-item range (hours). Both passed ``alertd check`` and would have stalled
delivery. Here a template renders under three limits, the same in ``alertd
check`` and at send time:

* **steps** — the lines of template code executed (counted by a trace hook
  active only in the rendering thread, only in template frames): deterministic,
  so a template that passes ``alertd check`` never times out later on a slower
  machine; :data:`MAX_STEPS` is a few tens of milliseconds of work;
* **output** — :data:`MAX_OUTPUT` characters, checked as the text is generated;
* **sizes** — ``*``/``**`` and calls (``'a'.ljust(n)``, ``center``,
  ``indent``, ``format``) may not build anything larger than the output cap.

Exceeding any of them raises :class:`TemplateBudgetExceeded` (a
``SecurityError``): ``alertd check`` reports it, a send falls back to the
built-in text. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment, safe_range

_SAFE_RANGE = safe_range

__all__ = ["MAX_OUTPUT", "MAX_STEPS", "BudgetedSandbox", "TemplateBudgetExceeded", "render_within_budget"]

#: Characters a template may render (a message is at most a few KB; 64 KiB is generous).
MAX_OUTPUT = 65_536
#: Template lines a render may execute.
MAX_STEPS = 200_000


_WIDTH = re.compile(r"%[-+ #0]*([0-9]+)")


class TemplateBudgetExceeded(SecurityError):
    """The template needed more steps, output or memory than a message may take."""


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT


def _sized_filter(name: str, original: Any) -> Any:
    """Wrap a filter whose numeric arguments set the size of its result."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if any(_too_big(a) for a in (*args[1:], *kwargs.values())):
            raise TemplateBudgetExceeded(f"{name}: argument too large")
        if name == "format" and args:
            # "%0100000000d"|format(1): the width hides in the format string itself
            for width in _WIDTH.findall(str(args[0])):
                if int(width) > MAX_OUTPUT:
                    raise TemplateBudgetExceeded("format: width too large")
        return original(*args, **kwargs)

    return guarded


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox with size checks on ``*``, ``**``, calls and the width-taking filters."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("center", "indent", "format", "wordwrap", "truncate"):
            if name in self.filters:
                self.filters[name] = _sized_filter(name, self.filters[name])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (_too_big(right) or (isinstance(right, int | float) and abs(right) > 64)):
            raise TemplateBudgetExceeded("exponent too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple | bytes) and isinstance(count, int)
                if sized and len(seq) * max(count, 0) > MAX_OUTPUT:
                    raise TemplateBudgetExceeded("repetition too large")
        return super().call_binop(context, operator, left, right)

    def call(self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # range() is already capped by the sandbox (MAX_RANGE) and its loops by the step budget
        if __obj is not _SAFE_RANGE and any(_too_big(a) for a in (*args, *kwargs.values())):
            raise TemplateBudgetExceeded("argument too large")
        return super().call(__context, __obj, *args, **kwargs)


class _Steps:
    """A trace hook counting executed lines of template code (``<template>`` frames only)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename == "<template>":
            return self.local_trace
        return None

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.left -= 1
            if self.left < 0:
                raise TemplateBudgetExceeded(f"template took more than {MAX_STEPS} steps")
        return self.local_trace


def render_within_budget(
    template: jinja2.Template,
    variables: Mapping[str, Any],
    *,
    max_steps: int = MAX_STEPS,
    max_output: int = MAX_OUTPUT,
) -> str:
    """Render ``template`` or raise :class:`TemplateBudgetExceeded`; restores any tracer it found."""
    steps = _Steps(max_steps)
    previous = sys.gettrace()
    sys.settrace(steps.global_trace)
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(dict(variables)):
            size += len(chunk)
            if size > max_output:
                raise TemplateBudgetExceeded(f"template output over {max_output} characters")
            parts.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(parts)
