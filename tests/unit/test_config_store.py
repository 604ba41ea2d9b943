"""``[store]``: the PostgreSQL URL is a secret that may come from the file, a secret file,
systemd's credentials directory or the environment, and never shows in an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.config import load_settings
from alertd.errors import ConfigError

URL = "postgresql://alertd:pw-Zq81x@db.internal:5432/alertd"
BASE = """\
[[sources]]
name = "ua"
type = "ukrainealarm"
token = "t0k"
"""


def _load(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> object:
    path = tmp_path / "alertd.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_settings(path, env=env or {}, registry=None)


def _url(settings: object) -> str | None:
    url = settings.store.url  # type: ignore[attr-defined]
    return None if url is None else url.get_secret_value()


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    assert _url(settings) is None and settings.store.claim_lease == 30  # type: ignore[attr-defined]


def test_url_in_the_file_in_a_secret_file_in_credentials_and_in_the_environment(tmp_path: Path) -> None:
    assert _url(_load(tmp_path, f'[store]\nurl = "{URL}"\ninstance = "a"\n')) == URL
    (tmp_path / "db.url").write_text(URL + "\n", encoding="utf-8")
    assert _url(_load(tmp_path, '[store]\nurl_file = "db.url"\n')) == URL
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "store.url").write_text(URL + "\n", encoding="utf-8")
    assert _url(_load(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)})) == URL
    assert (
        _url(_load(tmp_path, '[store]\nurl_file = "store.url"\n', {"CREDENTIALS_DIRECTORY": str(creds)}))
        == URL
    )
    assert _url(_load(tmp_path, env={"ALERTD_STORE__URL": URL})) == URL


def test_a_bad_url_is_named_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, '[store]\nurl = "mysql://alertd:pw-Zq81x@db/alertd"\n')
    assert any("store.url: must be a postgresql:// URL" in p for p in info.value.problems), (
        info.value.problems
    )
    assert "pw-Zq81x" not in str(info.value)
    (tmp_path / "bad.url").write_text("mysql://alertd:pw-Zq81x@db/alertd\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, '[store]\nurl_file = "bad.url"\n')
    assert "pw-Zq81x" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, '[store]\nurl_file = "missing.url"\n')
    assert any("store.url_file" in p for p in info.value.problems)


def test_the_password_is_scrubbed_from_log_lines(tmp_path: Path) -> None:
    from alertd.run.app import settings_secrets

    secrets = settings_secrets(_load(tmp_path, f'[store]\nurl = "{URL}"\n'))  # type: ignore[arg-type]
    assert URL in secrets and "pw-Zq81x" in secrets
