"""The source registry is the one place per-type facts live; everything else reads it."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from alertd.cli import build_parser
from alertd.config import SourceConfig
from alertd.core.backoff import backoff_ceiling, backoff_delay
from alertd.run.poll import request_headers
from alertd.sources import REGISTRY, alerts_in_ua, cap, oref, rss, ukrainealarm
from alertd.sources.spec import FeedShape, ItemBatch, ParseInput, SourceSpec


def test_every_module_spec_is_registered_under_its_type() -> None:
    modules = (alerts_in_ua, ukrainealarm, rss, cap, oref)
    assert {m.SPEC.type for m in modules} == set(REGISTRY)
    for module in modules:
        assert REGISTRY[module.KIND] is module.SPEC


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=list(REGISTRY))
def test_each_spec_has_exactly_the_parser_of_its_shape(spec: SourceSpec) -> None:
    if spec.shape is FeedShape.STATE:
        assert spec.parse_state is not None and spec.parse_items is None
    else:
        assert spec.parse_items is not None and spec.parse_state is None


def test_a_spec_with_the_wrong_parser_is_refused_at_import_time() -> None:
    def items(payload: ParseInput) -> ItemBatch:
        return ItemBatch()

    with pytest.raises(ValueError, match="exactly its own parser"):
        SourceSpec(type="x", shape=FeedShape.STATE, summary="x", parse_items=items)


def test_config_takes_defaults_from_the_spec() -> None:
    aiu = SourceConfig(name="a", type="alerts_in_ua")
    assert aiu.effective_url == alerts_in_ua.SPEC.default_url
    assert aiu.interval == 10.0
    assert SourceConfig(name="c", type="cap", url="https://x.example/cap").interval == 300.0
    assert SourceConfig(name="r", type="rss", url="https://x.example/rss").interval == 300.0
    assert SourceConfig(name="o", type="oref").effective_end_hold == 3600.0
    assert SourceConfig(name="o", type="oref", end_hold=60).effective_end_hold == 60.0
    assert SourceConfig(name="u", type="ukrainealarm").effective_end_hold is None


def test_unknown_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown source type 'meteo'.*alerts_in_ua.*oref"):
        SourceConfig(name="m", type="meteo")


def test_token_requirement_comes_from_the_spec() -> None:
    assert {t for t, spec in REGISTRY.items() if spec.token_required} == {"alerts_in_ua", "ukrainealarm"}


def test_auth_headers_are_built_by_each_spec() -> None:
    token = SecretStr("s3cret")
    aiu = request_headers(SourceConfig(name="a", type="alerts_in_ua", token=token))
    assert aiu["Authorization"] == "Bearer s3cret" and aiu["Accept"] == "application/json"
    ua = request_headers(SourceConfig(name="u", type="ukrainealarm", token=token))
    assert ua["Authorization"] == "s3cret"  # ukrainealarm takes the raw key
    ref = request_headers(SourceConfig(name="o", type="oref", headers={"Referer": "https://mirror.example/"}))
    assert ref["X-Requested-With"] == "XMLHttpRequest"
    assert ref["Referer"] == "https://mirror.example/"  # the operator's header wins
    assert "Authorization" not in request_headers(
        SourceConfig(name="c", type="cap", url="https://x.example/")
    )


def test_ukrainealarm_change_index_and_refresh_urls_derive_from_the_feed_url() -> None:
    spec = ukrainealarm.SPEC
    assert spec.change_index is not None and spec.refresh is not None
    base = "http://127.0.0.1:8080/api/v3/alerts"
    assert spec.change_index.url_for(base) == base + "/status"
    assert spec.refresh.url_for(base) == "http://127.0.0.1:8080/api/v3/regions"
    assert spec.refresh.every == 86400.0
    assert spec.change_index.url_for("http://127.0.0.1/mirror.json") is None


def test_parse_command_offers_exactly_the_registered_types() -> None:
    parser = build_parser()
    for name in REGISTRY:
        assert parser.parse_args(["parse", "--source", name, "f"]).source == name
    with pytest.raises(SystemExit):
        parser.parse_args(["parse", "--source", "meteo", "f"])


# -- the one backoff function ----------------------------------------------------------------


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    assert backoff_delay(3, base=2.0, cap=300.0, draw=0.0) == 0.0
    assert backoff_delay(3, base=2.0, cap=300.0, draw=0.5) == 4.0
    assert backoff_delay(3, base=2.0, cap=300.0, draw=1.0) == 8.0 == backoff_ceiling(3, base=2.0, cap=300.0)


def test_backoff_ceiling_doubles_from_base_and_stops_at_the_cap() -> None:
    assert [backoff_ceiling(n, base=10.0, cap=60.0) for n in range(0, 6)] == [10, 10, 20, 40, 60, 60]
    assert backoff_ceiling(10_000, base=1.0, cap=60.0) == 60.0  # no overflow at huge counts


def test_backoff_clamps_a_draw_outside_zero_one() -> None:
    assert backoff_delay(1, base=5.0, cap=60.0, draw=-1.0) == 0.0
    assert backoff_delay(1, base=5.0, cap=60.0, draw=7.0) == 5.0


def test_equal_jitter_floor_keeps_half_the_ceiling() -> None:
    assert backoff_delay(3, base=2.0, cap=300.0, draw=0.0, floor=0.5) == 4.0
    assert backoff_delay(3, base=2.0, cap=300.0, draw=1.0, floor=0.5) == 8.0
    assert backoff_delay(3, base=2.0, cap=300.0, draw=0.5, floor=2.0) == 8.0  # floor clamped to 1
