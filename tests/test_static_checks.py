"""The static checks CI holds the code to — ruff (lint and format) and mypy --strict — run as tests.

They live in the suite so that the README's one test command is the whole gate: a newcomer
who runs ``python -m pytest -q`` sees the same failures CI would, and ``.ci/run`` calls
exactly that command. Each check runs the tool as a process over the repository, with the
settings in ``pyproject.toml``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "alertd", "tests", "bench"),
        ("ruff", "format", "--check", "alertd", "tests", "bench"),
        ("mypy",),  # --strict over alertd/, configured in pyproject.toml [tool.mypy]
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_static_check_passes(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"[-6000:]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """CI must run what a newcomer is told to run, or a green CI can hide a broken README."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("**Run the tests**", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0].strip()
    assert block == "python -m pip install -e '.[test]' && python -m pytest -q"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert block in ci
