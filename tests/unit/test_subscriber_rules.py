"""One set of rules for what a subscriber chooses, worded by each front end its own way."""

from __future__ import annotations

import argparse

from alertd.cli import _add_problems
from alertd.config import Settings
from alertd.core.kinds import OFFERED_KINDS
from alertd.core.model import AlertKind, Region, RegionLevel
from alertd.core.subscribers import check_advisories, check_kinds, check_language, check_regions

KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="м. Київ", name_en="Kyiv")


class Registry:
    """Two lookups: ``get`` by code, ``find`` by name (for the "did you mean")."""

    def get(self, code: str) -> Region | None:
        return KYIV if code == "UA-30" else None

    def find(self, name: str) -> list[Region]:
        return [KYIV] if name.lower() == "kyiv" else []

    def search(self, name: str, limit: int = 3) -> list[Region]:
        return []


def test_regions_known_deduplicated_and_unknown_ones_suggested() -> None:
    codes, problems = check_regions(["UA-30", "UA-30", "kyiv", 7], Registry())
    assert codes == ("UA-30",)
    assert [(p.key, p.index, p.value) for p in problems] == [
        ("unknown_region", 2, "kyiv"),
        ("unknown_region", 3, "7"),
    ]
    assert problems[0].text == "unknown region code 'kyiv' (did you mean UA-30 Kyiv?)"


def test_regions_required_and_limited_for_self_service() -> None:
    assert [p.key for p in check_regions([], Registry(), required=True)[1]] == ["no_regions"]
    assert [p.key for p in check_regions("UA-30", Registry(), required=True)[1]] == ["no_regions"]
    (too_many,) = check_regions(["UA-30"] * 3, Registry(), limit=2)[1]
    assert (too_many.key, too_many.limit) == ("too_many_regions", 2)
    assert check_regions([], Registry()) == ((), [])  # the config file may leave regions empty


def test_kinds_parsed_and_limited_to_what_is_offered() -> None:
    kinds, problems = check_kinds(["air_raid", "drones", "air_raid"])
    assert kinds == (AlertKind.AIR_RAID, AlertKind.DRONES) and problems == []
    _, problems = check_kinds(["tsunami", "bogus"], allowed=OFFERED_KINDS)
    assert [(p.key, p.value) for p in problems] == [("unknown_kind", "tsunami"), ("unknown_kind", "bogus")]
    assert [p.key for p in check_kinds(None, required=True)[1]] == ["no_kinds"]


def test_advisories_name_a_source_or_a_country() -> None:
    kept, problems = check_advisories(["UA", "fcdo", "UA", "ukraine"], {"fcdo"})
    assert kept == ("UA", "fcdo")
    assert [(p.index, p.value) for p in problems] == [(3, "ukraine")]
    assert "neither a source name nor an ISO country code" in problems[0].text


def test_language_exactly_one_of_the_table() -> None:
    assert check_language("uk") == ("uk", [])
    assert [p.key for p in check_language("de")[1]] == ["bad_language"]
    assert [p.key for p in check_language(None)[1]] == ["bad_language"]


def test_cli_and_config_refuse_the_same_advisory_in_the_same_words() -> None:
    settings = Settings.model_validate(
        {"subscribers": [{"name": "a", "advisories": ["ukraine"], "urls": ["json://localhost/a"]}]}
    )
    from alertd.config import semantic_problems

    config_problems = semantic_problems(settings, Registry(), validate_urls=False)
    args = argparse.Namespace(
        name="b", region=["UA-30"], kind=["air_raid"], advisory=["ukraine"], url=[], language=None
    )
    cli_problems, regions, kinds = _add_problems(args, settings, Registry())
    why = "'ukraine' is neither a source name nor an ISO country code (e.g. 'UA')"
    assert f"subscribers[0].advisories[0]: {why}" in config_problems
    assert cli_problems == [f"--advisory: {why}"]
    assert regions == ("UA-30",) and kinds == ("air_raid",)
