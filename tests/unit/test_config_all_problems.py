"""``alertd check`` reports every problem in one run: schema errors and what only the registry knows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alertd.config import load_settings
from alertd.core.regions import RegionRegistry
from alertd.errors import ConfigError

CONFIG = """
state_dir = "{state}"
[[sources]]
name = "aiu"
type = "alerts_in_ua"
token = "t0ken"
intervall = 10

[[subscribers]]
name = "olena"
regions = ["UA-99"]
urls = ["json://127.0.0.1:9/olena"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(text.format(state=tmp_path / "state"), encoding="utf-8")
    return path


def test_unknown_key_and_unknown_region_are_both_reported(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=RegionRegistry.load(), validate_urls=False)
    assert info.value.problems == [
        f"{path}: sources[0].intervall: Extra inputs are not permitted",
        f"{path}: subscribers[0].regions[0]: unknown region code 'UA-99'",
    ]


def test_entries_left_out_for_being_invalid_do_not_shift_the_others_numbers(tmp_path: Path) -> None:
    text = CONFIG + '\n[[subscribers]]\nregions = ["UA-30"]\nurls = ["json://127.0.0.1:9/x"]\n'
    text = text.replace(
        '[[subscribers]]\nname = "olena"',
        '[[subscribers]]\nregions = ["UA-30"]\nurls = ["json://127.0.0.1:9/y"]\n\n[[subscribers]]\nname = "olena"',
        1,
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=RegionRegistry.load(), validate_urls=False)
    problems = [p.removeprefix(f"{path}: ") for p in info.value.problems]
    assert "subscribers[0].name: Field required" in problems
    assert "subscribers[2].name: Field required" in problems
    assert "subscribers[1].regions[0]: unknown region code 'UA-99'" in problems  # olena is [1] in the file


def test_alertd_check_prints_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "check", "--no-url-check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "sources[0].intervall" in result.stdout and "'UA-99'" in result.stdout
