"""The static checks CI holds the code to — ruff (lint and format) and mypy --strict — run as tests.

They live in the suite so that the README's one test command is the whole gate: a newcomer
who runs ``python -m pytest -q`` sees the same failures CI would, and ``.ci/run`` calls
exactly that command. Each check runs the tool as a process over the repository, with the
settings in ``pyproject.toml``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
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


def test_the_core_dependencies_are_the_ones_the_project_chose() -> None:
    """httpx fetches, APScheduler schedules polls, Apprise delivers, pydantic-settings configures.

    These four are fixed by the project brief: a change that replaces one of them with
    hand-written code (a scheduler of our own, say) is out of scope, however fast it is.
    Make the chosen library cheaper to use instead.
    """
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in declared}
    assert {"httpx", "apscheduler", "apprise", "pydantic-settings"} <= names
    sources = {p: p.read_text(encoding="utf-8") for p in (REPO / "alertd").rglob("*.py")}
    for module in ("httpx", "apscheduler", "apprise", "pydantic_settings"):
        assert any(re.search(rf"^\s*(from|import) {module}\b", text, re.M) for text in sources.values()), (
            module
        )
