"""Configuration loading: sources and their priority, secret files, and problem reports.

Every test passes its own ``env`` mapping so none touches ``os.environ``, and a
small fake region registry so the tests do not depend on the shipped one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.config import (
    Settings,
    load_settings,
    semantic_problems,
    summary,
)
from alertd.core.model import AlertKind, Region, RegionLevel
from alertd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "alertd.example.toml"
SECRET = "s3cr3t-token-XYZ"

KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")
LVIV = Region(code="UA-46", level=RegionLevel.OBLAST, name_uk="Львівська область", name_en="Lviv oblast")


class FakeRegistry:
    """The slice of RegionRegistry config validation uses."""

    def __init__(self, *regions: Region) -> None:
        self._regions = {r.code: r for r in regions}

    def get(self, code: str) -> Region | None:
        return self._regions.get(code)

    def find(self, name: str) -> list[Region]:
        return [
            r
            for r in self._regions.values()
            if name.casefold() in (r.name_en.casefold(), r.name_uk.casefold())
        ]

    def search(self, query: str, limit: int = 20) -> list[Region]:
        return []


REGISTRY = FakeRegistry(KYIV, LVIV)

MINIMAL = """\
[[sources]]
name = "ua"
type = "ukrainealarm"
token = "t0k"

[[subscribers]]
name = "olena"
regions = ["UA-30"]
urls = ["ntfy://ntfy.sh/alertd-test"]
"""


def write(tmp_path: Path, text: str, name: str = "alertd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {}, registry=REGISTRY, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


# --- loading that works --------------------------------------------------------------------


def test_example_file_loads_with_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "alerts-in-ua.token").write_text("abc123\n")
    settings = load_settings(EXAMPLE, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}, registry=REGISTRY)
    assert [s.name for s in settings.sources] == [
        "alerts-in-ua",
        "ukrainealarm",
        "us-embassy-kyiv",
        "meteoalarm-gb",
    ]
    alerts_in_ua, ukrainealarm, embassy, cap = settings.sources
    assert alerts_in_ua.token is not None and alerts_in_ua.token.get_secret_value() == "abc123"
    assert alerts_in_ua.effective_url == "https://api.alerts.in.ua/v1/alerts/active.json"
    assert ukrainealarm.token is not None and ukrainealarm.token.get_secret_value() == "REPLACE_ME"
    assert embassy.country == "UA" and embassy.url == "https://ua.usembassy.gov/category/alert/feed/"
    assert cap.type == "cap" and not cap.enabled
    assert settings.subscribers[0].kinds == [AlertKind.AIR_RAID]
    assert settings.subscribers[1].language == "en"
    assert settings.db_path == Path("/var/lib/alertd/alertd.sqlite3")
    assert summary(settings) == (
        "config OK: 4 sources (alerts-in-ua, ukrainealarm, us-embassy-kyiv, meteoalarm-gb (disabled)), "
        "2 subscribers, 2 channels, 1 operator channel, 1 topic"
    )


def test_example_file_with_the_real_registry(tmp_path: Path) -> None:
    """Once the shipped registry exists, the example's region codes must be in it."""
    from alertd.core.regions import RegionRegistry

    try:
        registry = RegionRegistry.load()
    except NotImplementedError:
        pytest.skip("region registry not implemented yet")
    (tmp_path / "alerts-in-ua.token").write_text("abc123\n")
    load_settings(EXAMPLE, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}, registry=registry)


def test_defaults_and_per_type_intervals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + '[[sources]]\nname = "feed"\ntype = "rss"\nurl = "https://example.org/feed"\n',
    )
    settings = load_settings(path, env={}, registry=REGISTRY)
    ua, feed = settings.sources
    assert ua.interval == 10 and ua.effective_allowance == 60
    assert feed.interval == 300 and feed.effective_allowance == 1800
    assert settings.language == "uk" and settings.http.listen == "127.0.0.1:9177"
    assert settings.http.host == "127.0.0.1" and settings.http.port == 9177
    assert settings.tracker.end_confirmations == 2
    assert isinstance(settings, Settings)


def test_env_overrides_file_and_nested_keys_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'language = "uk"\n' + MINIMAL + '\n[http]\nenabled = false\nlisten = "127.0.0.1:1"\n'
    )
    env = {
        "ALERTD_LANGUAGE": "en",
        "ALERTD_HTTP__LISTEN": "0.0.0.0:9177",
        "alertd_state_dir": "/tmp/x",
        "ALERTD_TRACKER__END_CONFIRMATIONS": "3",
    }
    settings = load_settings(path, env=env, registry=REGISTRY)
    assert settings.language == "en"
    assert settings.http.listen == "0.0.0.0:9177"
    assert settings.http.enabled is False  # from the file: env overrides merge, not replace
    assert settings.state_dir == Path("/tmp/x")
    assert settings.tracker.end_confirmations == 3


def test_init_kwargs_win_over_env(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(path, env={"ALERTD_LOG_LEVEL": "DEBUG"}, registry=REGISTRY, log_level="ERROR")
    assert settings.log_level == "ERROR"


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(None, env={"ALERTD_CONFIG": str(path)}, registry=REGISTRY)
    assert settings.sources[0].name == "ua"


def test_token_file_relative_to_config_folder(tmp_path: Path) -> None:
    (tmp_path / "ua.tok").write_text(SECRET + "\n")
    path = write(tmp_path, MINIMAL.replace('token = "t0k"', 'token_file = "ua.tok"'))
    settings = load_settings(path, env={}, registry=REGISTRY)
    token = settings.sources[0].token
    assert token is not None and token.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_credentials_directory_name_token(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ua.token").write_text("from-systemd\n")
    path = write(tmp_path, MINIMAL.replace('token = "t0k"\n', ""))
    settings = load_settings(path, env={"CREDENTIALS_DIRECTORY": str(creds)}, registry=REGISTRY)
    token = settings.sources[0].token
    assert token is not None and token.get_secret_value() == "from-systemd"


def test_urls_file_appended(tmp_path: Path) -> None:
    (tmp_path / "olena.urls").write_text("# phone\njson://localhost:8080/a\n\njson://localhost:8080/b\n")
    path = write(tmp_path, MINIMAL.replace('urls = ["ntfy', 'urls_file = "olena.urls"\nurls = ["ntfy'))
    settings = load_settings(path, env={}, registry=REGISTRY)
    urls = [u.get_secret_value() for u in settings.subscribers[0].urls]
    assert urls == ["ntfy://ntfy.sh/alertd-test", "json://localhost:8080/a", "json://localhost:8080/b"]


# --- problems -------------------------------------------------------------------------------


def test_unknown_key_anywhere(tmp_path: Path) -> None:
    path = write(tmp_path, "colour = 1\n" + MINIMAL + "[http]\nlisten_on = 1\n")
    problems = problems_of(path)
    assert f"{path}: colour: Extra inputs are not permitted" in problems
    assert f"{path}: http.listen_on: Extra inputs are not permitted" in problems


def test_unknown_env_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    problems = problems_of(path, env={"ALERTD_LANGAUGE": "en", "ALERTD_HTTP__LISTN": "x"})
    assert "ALERTD_LANGAUGE: unknown setting (environment variable)" in problems
    assert f"{path}: http.listn: Extra inputs are not permitted" in problems


def test_bad_interval_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('token = "t0k"', 'token = "t0k"\ninterval = 0.5'))
    assert problems_of(path) == [f"{path}: sources[0].interval: Input should be greater than or equal to 1"]


def test_bad_listen_and_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, 'timezone = "Mars/Olympus"\n[http]\nlisten = "localhost"\n')
    problems = problems_of(path)
    assert any(p.startswith(f"{path}: timezone: unknown time zone 'Mars/Olympus'") for p in problems)
    assert any(p.startswith(f"{path}: http.listen: expected host:port") for p in problems)


def test_unknown_region_code_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('regions = ["UA-30"]', 'regions = ["UA-30", "UA-99", "Kyiv"]'))
    problems = problems_of(path)
    assert f"{path}: subscribers[0].regions[1]: unknown region code 'UA-99'" in problems
    assert (
        f"{path}: subscribers[0].regions[2]: unknown region code 'Kyiv' (did you mean UA-30 Kyiv?)"
        in problems
    )


def test_unreadable_secret_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tok"
    path = write(tmp_path, MINIMAL.replace('token = "t0k"', f'token_file = "{missing}"'))
    assert problems_of(path) == [
        f"{path}: sources[0].token_file: cannot read {missing}: No such file or directory"
    ]


def test_bad_apprise_url_is_masked(tmp_path: Path) -> None:
    bad = f"notaservice://{SECRET}"
    path = write(tmp_path, MINIMAL.replace('urls = ["ntfy://ntfy.sh/alertd-test"]', f'urls = ["{bad}"]'))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=REGISTRY)
    (line,) = info.value.problems
    assert line.startswith(f"{path}: subscribers[0].urls[0]: Apprise cannot load 'notaservice://****'")
    assert SECRET not in str(info.value)
    # and validate_urls=False skips the check
    load_settings(path, env={}, registry=REGISTRY, validate_urls=False)


def test_duplicate_names(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + MINIMAL)
    problems = problems_of(path)
    assert f"{path}: sources[1].name: duplicate source name 'ua' (also sources[0])" in problems
    assert f"{path}: subscribers[1].name: duplicate subscriber name 'olena' (also subscribers[0])" in problems


def test_missing_token_url_and_channels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sources]]\nname = "a"\ntype = "alerts_in_ua"\n'
        '[[sources]]\nname = "r"\ntype = "rss"\n'
        '[[subscribers]]\nname = "x"\nadvisories = ["r", "Nowhere"]\n',
    )
    assert problems_of(path) == [
        f"{path}: sources[0].token: alerts_in_ua needs an API token (token or token_file)",
        f"{path}: sources[1].url: required for type rss",
        f"{path}: subscribers[0].advisories[1]: 'Nowhere' is neither a source name nor an ISO country code (e.g. 'UA')",
        f"{path}: subscribers[0].urls: no notification URLs (urls or urls_file)",
    ]


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'language = "en"\nsources = [\n[http]\n')
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert problems_of(path) == [f"{path}: cannot read config file: No such file or directory"]


def test_multiple_problems_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'log_level = "LOUD"\n'
        '[[sources]]\nname = "Bad Name"\ntype = "rss"\nurl = "https://e.org/f"\ninterval = 0\ntimeout = 500\n'
        "[delivery]\nconcurrency = 0\n",
    )
    problems = problems_of(path)
    keys = [p.removeprefix(f"{path}: ").split(":")[0] for p in problems]
    assert keys == [
        "log_level",
        "sources[0].name",
        "sources[0].interval",
        "sources[0].timeout",
        "delivery.concurrency",
    ]
    assert str(path) in str(problems_of(path)) and len(problems) == 5


def test_semantic_problems_are_also_collected_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace('token = "t0k"', 'token_file = "missing.tok"').replace('"UA-30"', '"UA-77"')
        + '[operators]\nurls = ["bogus://x"]\n',
    )
    keys = [p.removeprefix(f"{path}: ").split(":")[0] for p in problems_of(path)]
    assert keys == ["sources[0].token_file", "subscribers[0].regions[0]", "operators.urls[0]"]


def test_semantic_problems_without_registry_skip_regions() -> None:
    settings = Settings.model_validate(
        {"subscribers": [{"name": "a", "regions": ["UA-99"], "urls": ["ntfy://ntfy.sh/t"]}]}
    )
    assert semantic_problems(settings, None) == []
    assert semantic_problems(settings, REGISTRY) == ["subscribers[0].regions[0]: unknown region code 'UA-99'"]


# --- secrets never leak -----------------------------------------------------------------------


def test_secret_token_never_in_error_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[[sources]]\nname = "ua"\ntype = "ukrainealarm"\ntoken = "{SECRET}"\ninterval = -1\n'
        f'[[subscribers]]\nname = "x"\nurls = ["json://user:{SECRET}@localhost/", "tgram://{SECRET}"]\n'
        "[[subscribers]]\nname = 'y'\nurls = [1]\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=REGISTRY)
    assert SECRET not in str(info.value)
    # fix the schema error so the semantic (Apprise) checks run too
    path.write_text(
        path.read_text().replace("interval = -1", "").replace("urls = [1]", 'urls = ["ntfy://ntfy.sh/t"]')
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=REGISTRY)
    assert [p.split(": ")[1] for p in info.value.problems] == ["subscribers[0].urls[1]"]
    assert SECRET not in str(info.value)


# --- broadcast topics ---------------------------------------------------------------------------

TOPICS_BASE = """\
[[sources]]
name = "ua"
type = "ukrainealarm"
token = "t0k"
"""


def test_topics_both_modes_load(tmp_path: Path) -> None:
    (tmp_path / "tg.url").write_text("tgram://123456789:AAsecretTOKEN/@kyiv_alerts\n")
    path = write(
        tmp_path,
        TOPICS_BASE
        + """
[[topics]]
name = "places"
url = "ntfys://ntfy.example.org/alerts-{code}"
levels = ["oblast", "hromada"]
kinds = ["air_raid", "missiles"]
language = "en"

[[topics]]
name = "kyiv"
url_file = "tg.url"
places = ["UA-30"]
""",
    )
    settings = load_settings(path, env={}, registry=REGISTRY)
    places, kyiv = settings.topics
    assert places.levels == ["oblast", "hromada"] and places.language == "en"
    assert (
        kyiv.url is not None and kyiv.url.get_secret_value() == "tgram://123456789:AAsecretTOKEN/@kyiv_alerts"
    )
    assert summary(settings).endswith("2 topics")
    assert "AAsecretTOKEN" not in repr(settings)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('url = "ntfy://h/{code}"', "set exactly one of levels"),
        ('url = "ntfy://h/{code}"\nlevels = ["oblast"]\nplaces = ["UA-30"]', "set exactly one of levels"),
        ('url = "ntfy://h/{zone}"\nlevels = ["oblast"]', "topics[0].url: unknown placeholder(s) zone"),
        ('url = "ntfy://h/all"\nlevels = ["oblast"]', "topics[0].url: a template applied per place needs"),
        ('url = "ntfy://h/x"\nplaces = ["UA-99"]', "topics[0].places[0]: unknown region code 'UA-99'"),
        ('places = ["UA-30"]', "topics[0].url: required (url or url_file)"),
        ('url = "ntfy://h/{code}"\nlevels = ["country"]', "topics[0].levels[0]: Input should be"),
        ('url = "ntfy://h/x"\nplaces = ["UA-30"]\nfollow = "https://h/{nope}"', "topics[0].follow: unknown"),
    ],
)
def test_topic_problems(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, TOPICS_BASE + '[[topics]]\nname = "t"\n' + body + "\n")
    problems = problems_of(path)
    assert any(expected in p for p in problems), problems


def test_topic_template_collisions_need_the_real_registry(tmp_path: Path) -> None:
    from alertd.core.regions import RegionRegistry

    path = write(
        tmp_path,
        TOPICS_BASE + '[[topics]]\nname = "t"\nurl = "ntfy://h/{slug}"\nlevels = ["hromada"]\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}, registry=RegionRegistry.load(), validate_urls=False)
    assert any("expand to the same URL; add {code}" in p for p in info.value.problems)


def test_subscriber_names_cannot_pose_as_topics(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        TOPICS_BASE + '[[subscribers]]\nname = "topic:x"\nregions = ["UA-30"]\nurls = ["ntfy://ntfy.sh/a"]\n',
    )
    assert any("reserved for [[topics]]" in p for p in problems_of(path))


def test_push_and_cap_out_settings_are_checked(tmp_path: Path) -> None:
    source = (
        '[[sources]]\nname = "ua"\ntype = "ukrainealarm"\ntoken = "t"\n'
        'webhook_secret = "{secret}"\ninterval = 10\npush_interval = {push}\n'
    )
    short = write(tmp_path, source.format(secret="short", push=60), "a.toml")
    assert any("webhook_secret: must be 16 to 128" in p for p in problems_of(short))
    # the secret is never echoed, even when it is refused
    assert not any("short" in p for p in problems_of(short))
    slow = write(
        tmp_path,
        source.format(secret="x" * 20, push=5) + "[http]\nenabled = false\n[cap_out]\nenabled = true\n",
        "b.toml",
    )
    found = problems_of(slow)
    assert any("push_interval: shorter than interval" in p for p in found)
    assert any("webhook_secret: pushes arrive on the HTTP server" in p for p in found)
    assert any("cap_out.enabled: the CAP feed is served by the HTTP server" in p for p in found)
    wrong = write(
        tmp_path, '[[sources]]\nname = "o"\ntype = "oref"\nwebhook_secret = "' + "y" * 20 + '"\n', "c.toml"
    )
    assert any("webhook_secret: only ukrainealarm pushes" in p for p in problems_of(wrong))
    assert any("sender" in p for p in problems_of(write(tmp_path, '[cap_out]\nsender = "a b"\n', "d.toml")))


def test_region_codes_are_one_object_however_many_residents_name_them(tmp_path: Path) -> None:
    """10,000 residents following all 25 oblasts held 250,000 copies of 25 strings (≈ 14 MB)."""
    residents = "".join(
        f'[[subscribers]]\nname = "r{i}"\nregions = ["UA-30", "UA-30"]\nadvisories = ["UA"]\n'
        f'urls = ["ntfy://ntfy.sh/alertd-{i}"]\n'
        for i in range(3)
    )
    settings = load_settings(write(tmp_path, MINIMAL + residents), env={}, registry=REGISTRY)
    subscribers = settings.subscribers[1:]
    assert [s.regions for s in subscribers] == [["UA-30", "UA-30"]] * 3
    assert all(code is subscribers[0].regions[0] for s in subscribers for code in s.regions)
    assert all(s.advisories[0] is subscribers[0].advisories[0] for s in subscribers)


def test_kept_strings_are_copies_that_share_nothing_with_the_parse() -> None:
    """Strings kept from the TOML parse would pin its memory (bench/idle.py: 81.6 -> 78.2 MB)."""
    from alertd.config import _own

    for text in ("olena-" + "x" * 40, "json://127.0.0.1:9/c1", "Олена", "\udcff"):
        copy = _own(text)
        assert copy == text and copy is not text
