"""The region registry: both Ukrainian sources must land on the same codes.

If these break, alerts go to the wrong place or nowhere, so the tests pin the
places people check first (Kyiv, Kharkiv, Lviv) from both upstreams.
"""

from __future__ import annotations

import json
import time
from importlib import resources

import pycountry
import pytest

from alertd.core.model import Region, RegionLevel
from alertd.core.regions import (
    RegionRegistry,
    english_name,
    flatten_ukrainealarm_regions,
    normalize_name,
    transliterate_uk,
)

KYIV_CITY = "UA-30"
KYIV_OBLAST = "UA-32"
KHARKIV_OBLAST = "UA-63"
LVIV_OBLAST = "UA-46"
KHARKIV_CITY = "ua:6293"
KHARKIV_HROMADA = "ua:1293"
IRPIN = "ua:706"
BUCHA_RAION = "ua:75"


@pytest.fixture(scope="module")
def reg() -> RegionRegistry:
    return RegionRegistry.load()


# -- first level -------------------------------------------------------------


def test_oblasts_are_the_27_iso_subdivisions(reg: RegionRegistry) -> None:
    iso = {s.code for s in pycountry.subdivisions.get(country_code="UA")}
    assert len(iso) == 27
    assert {r.code for r in reg.oblasts()} == iso
    for region in reg.oblasts():
        assert region.level is RegionLevel.OBLAST
        assert region.parent is None
        assert region.oblast == region.code
        assert region.name_uk and region.name_en


@pytest.mark.parametrize(
    ("code", "name_uk", "name_en"),
    [
        ("UA-30", "м. Київ", "Kyiv"),
        ("UA-32", "Київська область", "Kyiv Oblast"),
        ("UA-63", "Харківська область", "Kharkiv Oblast"),
        ("UA-46", "Львівська область", "Lviv Oblast"),
        ("UA-43", "Автономна Республіка Крим", "Autonomous Republic of Crimea"),
        ("UA-40", "м. Севастополь", "Sevastopol"),
        # ISO: 74 is Chernihiv and 77 Chernivtsi (easy to swap).
        ("UA-74", "Чернігівська область", "Chernihiv Oblast"),
        ("UA-77", "Чернівецька область", "Chernivtsi Oblast"),
    ],
)
def test_oblast_names(reg: RegionRegistry, code: str, name_uk: str, name_en: str) -> None:
    region = reg.get(code)
    assert region is not None
    assert (region.name_uk, region.name_en) == (name_uk, name_en)


def test_iso_names_agree_with_pycountry_transliteration(reg: RegionRegistry) -> None:
    """pycountry spells oblasts adjectivally ("Kharkivska oblast"); those spellings find them too."""
    for sub in pycountry.subdivisions.get(country_code="UA"):
        if sub.type == "Region":
            assert [r.code for r in reg.find(sub.name)] == [sub.code], sub.name


# -- source ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "sid", "code"),
    [
        ("alerts_in_ua", 31, KYIV_CITY),
        ("alerts_in_ua", "31", KYIV_CITY),
        ("alerts_in_ua", 14, KYIV_OBLAST),
        ("alerts_in_ua", "6293", KHARKIV_CITY),
        ("alerts_in_ua", 22, KHARKIV_OBLAST),
        ("alerts_in_ua", 27, LVIV_OBLAST),
        ("ukrainealarm", "31", KYIV_CITY),
        ("ukrainealarm", 14, KYIV_OBLAST),
        ("ukrainealarm", "22", KHARKIV_OBLAST),
        ("ukrainealarm", "27", LVIV_OBLAST),
        ("ukrainealarm", "15", "UA-35"),
        ("ukrainealarm", "81", "ua:81"),  # Кропивницький район (from the /regions excerpt)
        ("ukrainealarm", "761", "ua:761"),  # м. Кропивницький та … громада
        ("ukrainealarm", "1293", KHARKIV_HROMADA),  # м. Харків та Харківська … громада
    ],
)
def test_by_source_id(reg: RegionRegistry, source: str, sid: str | int, code: str) -> None:
    region = reg.by_source_id(source, sid)
    assert region is not None and region.code == code


def test_every_alerts_in_ua_uid_is_mapped(reg: RegionRegistry) -> None:
    doc = json.loads(resources.files("alertd.data").joinpath("regions.json").read_text("utf-8"))
    uids = doc["source_ids"]["alerts_in_ua"]
    assert len(uids) == 1629 == len(reg)
    for uid in uids:
        assert reg.by_source_id("alerts_in_ua", int(uid)) is not None


def test_ukrainealarm_states_are_all_27_oblasts(reg: RegionRegistry) -> None:
    """ukrainealarm State ids are the alerts.in.ua oblast uids, for every oblast."""
    for region in reg.oblasts():
        ids = dict(reg.source_ids_of(region.code))
        assert ids["ukrainealarm"] == ids["alerts_in_ua"], region.code
        assert reg.by_source_id("ukrainealarm", ids["ukrainealarm"]) == region


def test_kharkiv_city_on_ukrainealarm_lies_in_the_mapped_hromada(reg: RegionRegistry) -> None:
    hromada = reg.by_source_id("ukrainealarm", 1293)
    assert hromada is not None
    assert reg.contains(hromada.code, KHARKIV_CITY)


def test_learn_ukrainealarm_regions_maps_new_ids_by_name(reg: RegionRegistry) -> None:
    """A live /regions answer with ids the shipped data lacks is matched by name, in a new registry."""
    payload = {
        "states": [
            {
                "regionId": "22",
                "regionName": "Харківська область",
                "regionType": "State",
                "regionChildIds": [
                    {
                        "regionId": "9124",
                        "regionName": "Харківський район",
                        "regionType": "District",
                        "regionChildIds": [
                            {
                                "regionId": "99293",
                                "regionName": "м. Харків та Харківська територіальна громада",
                                "regionType": "Community",
                            },
                            {
                                "regionId": "99287",
                                "regionName": "Мереф’янська міська територіальна громада",
                                "regionType": "Community",
                            },
                        ],
                    }
                ],
            }
        ]
    }
    entries = flatten_ukrainealarm_regions(payload)
    assert entries[0] == ("22", "Харківська область", "State", None)
    learned = reg.learn_ukrainealarm_regions(entries)
    assert learned is not reg
    assert learned.by_source_id("ukrainealarm", "9124").code == "ua:124"  # type: ignore[union-attr]
    kharkiv = learned.by_source_id("ukrainealarm", 99293)
    assert kharkiv is not None and kharkiv.code == KHARKIV_HROMADA
    assert learned.contains(kharkiv.code, KHARKIV_CITY)
    assert learned.by_source_id("ukrainealarm", 99287).code == "ua:1287"  # type: ignore[union-attr]
    # the original registry is untouched
    assert reg.by_source_id("ukrainealarm", 99293) is None
    # the raw JSON answer works too
    assert reg.learn_ukrainealarm_regions(payload).by_source_id("ukrainealarm", 9124) is not None


def test_learn_skips_ambiguous_names(reg: RegionRegistry) -> None:
    """ "Павлівська територіальна громада" exists in three oblasts: without a parent, no guess."""
    entries = [("70001", "Павлівська територіальна громада", "Community", None)]
    matched, unmatched = reg.match_ukrainealarm_regions(entries)
    assert matched == {} and len(unmatched) == 1
    in_zaporizhzhia = [
        ("12", "Запорізька область", "State", None),
        *[(e[0], e[1], e[2], "12") for e in entries],
    ]
    matched, _ = reg.match_ukrainealarm_regions(in_zaporizhzhia)
    assert matched == {"12": "UA-23", "70001": "ua:572"}


# -- names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Київ", KYIV_CITY),
        ("kyiv", KYIV_CITY),
        ("Kyiv", KYIV_CITY),
        ("м. Київ", KYIV_CITY),
        ("  КИЇВ ", KYIV_CITY),
        ("Харків", KHARKIV_CITY),
        ("Kharkiv", KHARKIV_CITY),
        ("Київська область", KYIV_OBLAST),
        ("Kyiv Oblast", KYIV_OBLAST),
        ("kyiv oblast", KYIV_OBLAST),
        ("Lviv Oblast", LVIV_OBLAST),
        ("Ірпінь", IRPIN),
        ("Irpin", IRPIN),
        ("Crimea", "UA-43"),
    ],
)
def test_find(reg: RegionRegistry, name: str, code: str) -> None:
    assert [r.code for r in reg.find(name)] == [code]


@pytest.mark.parametrize("apostrophe", ["'", "’", "ʼ", "`", ""])
def test_find_is_apostrophe_insensitive(reg: RegionRegistry, apostrophe: str) -> None:
    raion = f"Кам{apostrophe}янець-Подільський район"
    assert [r.code for r in reg.find(raion)] == ["ua:135"]
    city = f"Кам{apostrophe}янець-Подільський"
    assert [r.code for r in reg.find(city)] == ["ua:1427"]


def test_find_returns_all_namesakes(reg: RegionRegistry) -> None:
    found = reg.find("Павлівська територіальна громада")
    assert len(found) == 3
    assert len({r.oblast for r in found}) == 3


def test_find_unknown_is_empty(reg: RegionRegistry) -> None:
    assert reg.find("Атлантида") == []
    assert reg.find("") == []


def test_search_finds_irpin(reg: RegionRegistry) -> None:
    results = reg.search("Ірпінь")
    assert results and results[0].code == IRPIN
    assert reg.search("ірпін")[0].code == IRPIN
    assert reg.search("Irpin")[0].code == IRPIN


def test_search_orders_exact_then_prefix_then_substring(reg: RegionRegistry) -> None:
    codes = [r.code for r in reg.search("Kyiv")]
    assert codes[:2] == [KYIV_CITY, KYIV_OBLAST]
    khar = [r.code for r in reg.search("khar", limit=50)]
    assert khar[0] == KHARKIV_CITY
    assert {KHARKIV_OBLAST, KHARKIV_HROMADA, "ua:124"} <= set(khar)
    assert khar.index(KHARKIV_CITY) < khar.index(KHARKIV_OBLAST)
    # substring hit ("Zakharivska") comes after prefix hits
    assert khar.index("ua:1030") > khar.index("ua:124")


def test_search_limit_and_empty(reg: RegionRegistry) -> None:
    assert len(reg.search("ська", limit=5)) == 5
    assert reg.search("") == []
    assert reg.search("kyiv", limit=0) == []


# -- hierarchy ------------------------------------------------------------------------


def test_hromada_in_raion_in_oblast(reg: RegionRegistry) -> None:
    irpin = reg.get(IRPIN)
    assert irpin is not None
    assert irpin.level is RegionLevel.HROMADA
    assert irpin.parent == BUCHA_RAION
    assert irpin.oblast == KYIV_OBLAST
    assert [r.code for r in reg.ancestors(IRPIN)] == [BUCHA_RAION, KYIV_OBLAST]
    assert reg.get(BUCHA_RAION).level is RegionLevel.RAION  # type: ignore[union-attr]
    assert IRPIN in {r.code for r in reg.children(BUCHA_RAION)}


def test_city_lies_in_its_hromada(reg: RegionRegistry) -> None:
    assert [r.code for r in reg.ancestors(KHARKIV_CITY)] == [KHARKIV_HROMADA, "ua:124", KHARKIV_OBLAST]


def test_contains(reg: RegionRegistry) -> None:
    assert reg.contains(KYIV_OBLAST, IRPIN)
    assert reg.contains(BUCHA_RAION, IRPIN)
    assert reg.contains(IRPIN, IRPIN)
    assert not reg.contains(KYIV_CITY, IRPIN)
    assert not reg.contains(IRPIN, KYIV_OBLAST)
    assert not reg.contains(KYIV_OBLAST, KYIV_CITY)
    assert reg.contains(KHARKIV_OBLAST, KHARKIV_CITY)


def test_related_both_directions(reg: RegionRegistry) -> None:
    assert reg.related(KYIV_OBLAST, IRPIN)
    assert reg.related(IRPIN, KYIV_OBLAST)
    assert reg.related(KHARKIV_CITY, KHARKIV_HROMADA)
    assert not reg.related(KYIV_CITY, KYIV_OBLAST)
    assert not reg.related(IRPIN, "ua:700")  # sibling hromada in the same raion
    assert not reg.related(KHARKIV_CITY, LVIV_OBLAST)


def test_ancestors_of_unknown_code_is_empty(reg: RegionRegistry) -> None:
    assert reg.ancestors("nowhere") == []
    assert reg.ancestors(KYIV_CITY) == []


def test_all_parents_exist_and_oblast_is_consistent(reg: RegionRegistry) -> None:
    for region in reg:
        chain = reg.ancestors(region.code)
        if region.parent is not None:
            assert chain and chain[0].code == region.parent
        top = chain[-1] if chain else region
        assert top.level is RegionLevel.OBLAST
        assert region.oblast == top.code


# -- resolve ------------------------------------------------------------------------


def test_resolve_known_id(reg: RegionRegistry) -> None:
    region, warning = reg.resolve("alerts_in_ua", 31)
    assert region.code == KYIV_CITY and warning is None
    region, warning = reg.resolve("ukrainealarm", "14")
    assert region.code == KYIV_OBLAST and warning is None


def test_resolve_unknown_id_places_it_in_the_hinted_oblast(reg: RegionRegistry) -> None:
    region, warning = reg.resolve(
        "ukrainealarm", 99999, name="Нова територіальна громада", level=RegionLevel.HROMADA, oblast_hint="22"
    )
    assert region.code == "ukrainealarm:99999"
    assert region.level is RegionLevel.HROMADA
    assert region.name_uk == "Нова територіальна громада"
    assert region.name_en == "Nova hromada"
    assert region.oblast == KHARKIV_OBLAST and region.parent == KHARKIV_OBLAST
    assert warning is not None and "ukrainealarm" in warning and "99999" in warning
    assert reg.contains(KHARKIV_OBLAST, region)
    assert not reg.contains(KYIV_OBLAST, region)


def test_resolve_unknown_id_without_hint(reg: RegionRegistry) -> None:
    region, warning = reg.resolve("alerts_in_ua", "123456", level=RegionLevel.RAION, oblast_hint=None)
    assert region.code == "alerts_in_ua:123456"
    assert region.level is RegionLevel.RAION
    assert region.oblast is None and region.parent is None
    assert warning and "alerts_in_ua" in warning and "123456" in warning


def test_resolve_unmapped_ukrainealarm_id_confirmed_by_name(reg: RegionRegistry) -> None:
    """ukrainealarm 152 is not in the shipped data; alerts.in.ua 152 is the same-named raion."""
    assert reg.by_source_id("ukrainealarm", 152) is None
    region, warning = reg.resolve("ukrainealarm", 152, name="Черкаський район", level=RegionLevel.RAION)
    assert region.code == "ua:152" and region.oblast == "UA-71" and warning is None
    # a different name (or none) is not enough to trust the number
    region, warning = reg.resolve("ukrainealarm", 152, name="Інший район", level=RegionLevel.RAION)
    assert region.code == "ukrainealarm:152" and warning
    region, warning = reg.resolve("ukrainealarm", 152)
    assert region.code == "ukrainealarm:152" and warning


@pytest.mark.parametrize("hint", [999, "garbage", "", None])
def test_resolve_never_raises(reg: RegionRegistry, hint: object) -> None:
    region, warning = reg.resolve("alerts_in_ua", "x", name="?", oblast_hint=hint)  # type: ignore[arg-type]
    assert isinstance(region, Region) and warning


# -- helpers, construction ------------------------------------------------------------


@pytest.mark.parametrize(
    ("uk", "en"),
    [
        ("Київ", "Kyiv"),
        ("Харків", "Kharkiv"),
        ("Запоріжжя", "Zaporizhzhia"),
        ("Згорани", "Zghorany"),
        ("Мар'янівка", "Marianivka"),
        ("Їжакевич", "Yizhakevych"),
        ("Яготин", "Yahotyn"),
        ("Олексіївка", "Oleksiivka"),
        ("Щербухи", "Shcherbukhy"),
        ("Юрій", "Yurii"),
        ("Ковель", "Kovel"),
    ],
)
def test_transliterate_kmu_2010(uk: str, en: str) -> None:
    assert transliterate_uk(uk) == en


@pytest.mark.parametrize(
    ("uk", "en"),
    [
        ("м. Харків", "Kharkiv"),
        ("Кропивницький район", "Kropyvnytskyi Raion"),
        ("Аджамська територіальна громада", "Adzhamska hromada"),
        ("м. Ірпінь та Ірпінська територіальна громада", "Irpin and Irpinska hromada"),
        ("Донецька міська громада", "Donetska urban hromada"),
    ],
)
def test_english_name(uk: str, en: str) -> None:
    assert english_name(uk) == en


def test_normalize_name() -> None:
    assert normalize_name("  Кам’янець  ") == normalize_name("камʼянець") == "камянець"


def test_registry_from_plain_regions() -> None:
    oblast = Region(code="UA-63", level=RegionLevel.OBLAST, name_uk="Харківська область", oblast="UA-63")
    city = Region(code="ua:1", level=RegionLevel.CITY, name_uk="м. Тест", parent="UA-63", oblast="UA-63")
    reg = RegionRegistry([oblast, city], {("alerts_in_ua", "1"): "ua:1", ("alerts_in_ua", "2"): "ua:missing"})
    assert reg.by_source_id("alerts_in_ua", 1) == city
    assert reg.by_source_id("alerts_in_ua", 2) is None  # ids pointing nowhere are dropped
    assert [r.code for r in reg.find("Тест")] == ["ua:1"]
    assert reg.contains("UA-63", "ua:1")


def test_regions_are_immutable(reg: RegionRegistry) -> None:
    region = reg.get(KYIV_CITY)
    assert region is not None
    with pytest.raises(ValueError):
        region.name_en = "Kiev"  # type: ignore[misc]


def test_load_is_cached_and_fast() -> None:
    assert RegionRegistry.load() is RegionRegistry.load()
    doc = json.loads(resources.files("alertd.data").joinpath("regions.json").read_text("utf-8"))
    start = time.perf_counter()
    RegionRegistry.from_json(doc)
    assert time.perf_counter() - start < 0.5  # generous for slow CI; ~15 ms locally


def test_learned_region_without_a_name_match_still_lies_under_its_parent():
    registry = RegionRegistry.load()
    entries = [
        ("14", "Київська область", "State", None),
        ("99001", "Вигадана територіальна громада", "Community", "14"),
    ]
    learned = registry.learn_ukrainealarm_regions(entries)
    region = learned.by_source_id("ukrainealarm", "99001")
    assert region is not None and region.code == "ukrainealarm:99001"
    assert region.oblast == "UA-32" and region.parent == "UA-32"
    assert learned.contains("UA-32", region.code)
    assert registry.by_source_id("ukrainealarm", "99001") is None  # the original is unchanged


def test_same_number_and_same_name_settle_look_alike_names():
    registry = RegionRegistry.load()
    city = registry.by_source_id("alerts_in_ua", "354")
    assert city is not None
    learned = registry.learn_ukrainealarm_regions([("354", city.name_uk, "Community", None)])
    assert learned.by_source_id("ukrainealarm", "354") == city
