"""Generate alertd/data/regions.json from the upstream location tables.

Run offline, never at import time: ``python -m alertd.devtools.build_regions SRC_DIR``
where SRC_DIR holds ``alerts_in_ua/locations_uid_table_php.json``,
``alerts_in_ua/oblast_uids_and_iot_order.json`` and
``ukrainealarm/regions_excerpt_trimmed_jaam_uaapi.json`` (the shared feed samples).
The output is committed, so the daemon starts without network access and a
reviewer can diff what changed. See README.md next to this file for provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from alertd.core.model import Region, RegionLevel
from alertd.core.regions import RegionRegistry, english_name, flatten_ukrainealarm_regions

# ISO 3166-2:UA code -> (Ukrainian name as alerts.in.ua spells it, common English name).
# English names follow current Ukrainian government usage (KMU 2010 transliteration,
# "Kyiv" not "Kiev", "Zaporizhzhia", "Odesa"), not the adjectival ISO forms.
# NB: ISO has UA-74 = Chernihiv and UA-77 = Chernivtsi (checked against pycountry).
OBLASTS: dict[str, tuple[str, str]] = {
    "UA-05": ("Вінницька область", "Vinnytsia Oblast"),
    "UA-07": ("Волинська область", "Volyn Oblast"),
    "UA-09": ("Луганська область", "Luhansk Oblast"),
    "UA-12": ("Дніпропетровська область", "Dnipropetrovsk Oblast"),
    "UA-14": ("Донецька область", "Donetsk Oblast"),
    "UA-18": ("Житомирська область", "Zhytomyr Oblast"),
    "UA-21": ("Закарпатська область", "Zakarpattia Oblast"),
    "UA-23": ("Запорізька область", "Zaporizhzhia Oblast"),
    "UA-26": ("Івано-Франківська область", "Ivano-Frankivsk Oblast"),
    "UA-30": ("м. Київ", "Kyiv"),
    "UA-32": ("Київська область", "Kyiv Oblast"),
    "UA-35": ("Кіровоградська область", "Kirovohrad Oblast"),
    "UA-40": ("м. Севастополь", "Sevastopol"),
    "UA-43": ("Автономна Республіка Крим", "Autonomous Republic of Crimea"),
    "UA-46": ("Львівська область", "Lviv Oblast"),
    "UA-48": ("Миколаївська область", "Mykolaiv Oblast"),
    "UA-51": ("Одеська область", "Odesa Oblast"),
    "UA-53": ("Полтавська область", "Poltava Oblast"),
    "UA-56": ("Рівненська область", "Rivne Oblast"),
    "UA-59": ("Сумська область", "Sumy Oblast"),
    "UA-61": ("Тернопільська область", "Ternopil Oblast"),
    "UA-63": ("Харківська область", "Kharkiv Oblast"),
    "UA-65": ("Херсонська область", "Kherson Oblast"),
    "UA-68": ("Хмельницька область", "Khmelnytskyi Oblast"),
    "UA-71": ("Черкаська область", "Cherkasy Oblast"),
    "UA-74": ("Чернігівська область", "Chernihiv Oblast"),
    "UA-77": ("Чернівецька область", "Chernivtsi Oblast"),
}

# ukrainealarm.com /api/v3/regions "State" regionId per ISO code. ukrainealarm's
# state ids are the same numbers as the alerts.in.ua oblast uids (alerts.in.ua took
# over ukrainealarm's numbering): the excerpt confirms "31" = м. Київ and
# "15" = Кіровоградська область, and the fixtures "22" (Kharkiv) and "14" (Kyiv oblast)
# agree. The table is written out rather than derived so a change upstream shows
# up as a failing assertion in main() instead of silently remapping a state.
UKRAINEALARM_STATE_IDS: dict[str, str] = {
    "UA-05": "4",
    "UA-07": "8",
    "UA-09": "16",
    "UA-12": "9",
    "UA-14": "28",
    "UA-18": "10",
    "UA-21": "11",
    "UA-23": "12",
    "UA-26": "13",
    "UA-30": "31",
    "UA-32": "14",
    "UA-35": "15",
    "UA-40": "30",
    "UA-43": "29",
    "UA-46": "27",
    "UA-48": "17",
    "UA-51": "18",
    "UA-53": "19",
    "UA-56": "5",
    "UA-59": "20",
    "UA-61": "21",
    "UA-63": "22",
    "UA-65": "23",
    "UA-68": "3",
    "UA-71": "24",
    "UA-74": "25",
    "UA-77": "26",
}

_LEVELS = {"district": RegionLevel.RAION, "hromada": RegionLevel.HROMADA, "city": RegionLevel.CITY}


def build(src: Path) -> tuple[RegionRegistry, list[str]]:
    """Build the registry and a list of notes worth a human look."""
    notes: list[str] = []
    table: dict[str, dict[str, Any]] = json.loads(
        (src / "alerts_in_ua" / "locations_uid_table_php.json").read_text(encoding="utf-8")
    )
    oblast_list = json.loads((src / "alerts_in_ua" / "oblast_uids_and_iot_order.json").read_text("utf-8"))
    ua_payload = json.loads(
        (src / "ukrainealarm" / "regions_excerpt_trimmed_jaam_uaapi.json").read_text(encoding="utf-8")
    )

    iso_by_name = {name_uk: iso for iso, (name_uk, _) in OBLASTS.items()}
    iso_by_uid: dict[str, str] = {}
    for entry in oblast_list["oblasts"]:
        iso_by_uid[str(entry["uid"])] = iso_by_name[entry["title"]]
    assert len(iso_by_uid) == 27, "expected 27 first-level divisions"
    for uid, iso in iso_by_uid.items():
        assert table[uid]["name"] == OBLASTS[iso][0], (uid, iso)
        assert table[uid]["type"] in ("oblast", "standalone"), uid

    regions: dict[str, Region] = {}
    source_ids: dict[tuple[str, str], str] = {}
    for iso, (name_uk, name_en) in OBLASTS.items():
        regions[iso] = Region(
            code=iso, level=RegionLevel.OBLAST, name_uk=name_uk, name_en=name_en, oblast=iso
        )
    for uid, iso in iso_by_uid.items():
        source_ids[("alerts_in_ua", uid)] = iso

    def code_of(uid: str) -> str:
        return iso_by_uid.get(uid, f"ua:{uid}")

    # Raions, then hromadas, then cities, so parents exist before their children.
    order = {"district": 0, "hromada": 1, "city": 2}
    rows = sorted(
        ((uid, row) for uid, row in table.items() if row["type"] in order),
        key=lambda item: (order[item[1]["type"]], int(item[0])),
    )
    for uid, row in rows:
        oblast = iso_by_uid[str(row["oblast_id"])]
        parent = oblast if row["district_id"] is None else code_of(str(row["district_id"]))
        if row["type"] == "city":
            # The big cities have their own record besides their hromada ("м. Харків"
            # next to "м. Харків та Харківська територіальна громада"); put the city
            # inside that hromada so an alert for the hromada reaches city subscribers.
            prefix = row["name"] + " та "
            around = [
                code
                for code, r in regions.items()
                if r.level is RegionLevel.HROMADA and r.parent == parent and r.name_uk.startswith(prefix)
            ]
            if len(around) == 1:
                parent = around[0]
            else:
                notes.append(f"city {uid} {row['name']}: no unique hromada around it ({around}); under raion")
        code = f"ua:{uid}"
        regions[code] = Region(
            code=code,
            level=_LEVELS[row["type"]],
            name_uk=row["name"],
            name_en=english_name(row["name"]),
            parent=parent,
            oblast=oblast,
        )
        source_ids[("alerts_in_ua", uid)] = code
    missing = set(table) - {sid for (_, sid) in source_ids}
    assert not missing, f"uids without a region: {sorted(missing)}"

    for iso, sid in UKRAINEALARM_STATE_IDS.items():
        source_ids[("ukrainealarm", sid)] = iso
    registry = RegionRegistry(regions.values(), source_ids)

    entries = flatten_ukrainealarm_regions(ua_payload)
    matched, unmatched = registry.match_ukrainealarm_regions(entries)
    for raw_id, name, rtype, _parent in entries:
        ua_id = str(raw_id)
        match = matched.get(ua_id)
        if rtype == "State" and ua_id in UKRAINEALARM_STATE_IDS.values():
            expected = next(iso for iso, s in UKRAINEALARM_STATE_IDS.items() if s == ua_id)
            assert match == expected, (
                f"ukrainealarm state {ua_id} {name} matched {match}, table says {expected}"
            )
        elif match is not None:
            uid_code = code_of(ua_id)
            same = "same id as alerts.in.ua" if uid_code == match else f"alerts.in.ua id differs ({uid_code})"
            notes.append(f"ukrainealarm {rtype} {ua_id} {name!r} -> {match} ({same})")
    for raw_id, name, rtype, _parent in unmatched:
        notes.append(f"ukrainealarm {rtype} {raw_id} {name!r}: no unique match, left out")
    return registry.learn_ukrainealarm_regions(entries), notes


def main(argv: list[str] | None = None) -> int:
    """CLI entry: build and write regions.json, printing notes to stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="directory with alerts_in_ua/ and ukrainealarm/ samples")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "regions.json"
    )
    args = parser.parse_args(argv)
    registry, notes = build(args.src)
    for note in notes:
        print(note, file=sys.stderr)
    doc = registry.to_json()
    doc["generated_from"] = [
        "alerts_in_ua/locations_uid_table_php.json",
        "alerts_in_ua/oblast_uids_and_iot_order.json",
        "ukrainealarm/regions_excerpt_trimmed_jaam_uaapi.json",
    ]
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    # One region per line keeps diffs of the committed file readable.
    text = text.replace("],[", "],\n[")
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(registry)} regions to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
