"""The region registry: every place alertd knows, its codes, names and parent.

Both Ukrainian sources (alerts.in.ua and ukrainealarm.com) name places by their
own numeric ids. Routing, dedup and subscriptions must not care which source
spoke, so every upstream id is mapped here onto one stable ``Region.code``:
ISO 3166-2 for the 27 first-level divisions (``UA-63``), ``ua:<alerts.in.ua uid>``
below that (``ua:6293`` is the city of Kharkiv).

The data ships as ``alertd/data/regions.json``, generated offline by
``python -m alertd.devtools.build_regions`` (see ``alertd/data/README.md``). A
registry is immutable: "learning" new upstream ids returns a new registry, so a
registry handed to a parser can never change under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache, cached_property
from importlib import resources
from typing import Any

from alertd.core.model import Region, RegionLevel

__all__ = [
    "SOURCES",
    "RegionRegistry",
    "UkrainealarmEntry",
    "english_name",
    "flatten_ukrainealarm_regions",
    "normalize_name",
    "transliterate_uk",
]

#: The upstream id namespaces the registry maps; other spellings are folded onto these.
SOURCES: tuple[str, ...] = ("alerts_in_ua", "ukrainealarm")
_SOURCE_ALIASES: dict[str, str] = {
    "alerts_in_ua": "alerts_in_ua",
    "alerts.in.ua": "alerts_in_ua",
    "alertsinua": "alerts_in_ua",
    "ukrainealarm": "ukrainealarm",
    "ukrainealarm.com": "ukrainealarm",
    "ukraine_alarm": "ukrainealarm",
}

#: One region of a ukrainealarm ``/api/v3/regions`` answer: (regionId, regionName, regionType, parentId).
UkrainealarmEntry = tuple[str | int, str, str, str | int | None]

# ---------------------------------------------------------------------------
# Names: normalization and the Ukrainian national transliteration (KMU 2010)
# ---------------------------------------------------------------------------

# Upstreams disagree on the apostrophe (ASCII ', typographic ’, modifier letter ʼ,
# backtick), so a user typing any of them must find the same place.
_APOSTROPHES = "'’ʼ`‘′ʹ"
_APOSTROPHE_TABLE = {ord(c): None for c in _APOSTROPHES}


def normalize_name(name: str) -> str:
    """Fold a place name for comparison: case, apostrophes, and whitespace do not matter."""
    return " ".join(name.translate(_APOSTROPHE_TABLE).casefold().split())


# letter -> (at the start of a word, elsewhere); KMU resolution No. 55 of 27.01.2010.
_TRANSLIT: dict[str, tuple[str, str]] = {
    "а": ("a", "a"),
    "б": ("b", "b"),
    "в": ("v", "v"),
    "г": ("h", "h"),
    "ґ": ("g", "g"),
    "д": ("d", "d"),
    "е": ("e", "e"),
    "є": ("ye", "ie"),
    "ж": ("zh", "zh"),
    "з": ("z", "z"),
    "и": ("y", "y"),
    "і": ("i", "i"),
    "ї": ("yi", "i"),
    "й": ("y", "i"),
    "к": ("k", "k"),
    "л": ("l", "l"),
    "м": ("m", "m"),
    "н": ("n", "n"),
    "о": ("o", "o"),
    "п": ("p", "p"),
    "р": ("r", "r"),
    "с": ("s", "s"),
    "т": ("t", "t"),
    "у": ("u", "u"),
    "ф": ("f", "f"),
    "х": ("kh", "kh"),
    "ц": ("ts", "ts"),
    "ч": ("ch", "ch"),
    "ш": ("sh", "sh"),
    "щ": ("shch", "shch"),
    "ь": ("", ""),
    "ю": ("yu", "iu"),
    "я": ("ya", "ia"),
}


def transliterate_uk(text: str) -> str:
    """Latin spelling of Ukrainian text by the official KMU 2010 table.

    This is the system Ukraine uses for its own place names in English
    ("Kharkiv", "Kyiv", "Zaporizhzhia"), so transliterated names look like the
    ones people read on road signs and in the news. Rules beyond the table:
    "зг" is "zgh", the soft sign and apostrophes are dropped, and є/ї/й/ю/я have
    a word-initial form (a word starts after anything but a letter or apostrophe).
    """
    out: list[str] = []
    in_word = False
    prev = ""
    for ch in text:
        low = ch.lower()
        pair = _TRANSLIT.get(low)
        if pair is None:
            if ch in _APOSTROPHES:
                continue  # dropped, and the word goes on: Мар'янівка -> Marianivka
            out.append(ch)
            in_word = ch.isalpha()
            prev = ""
            continue
        latin = pair[1] if in_word else pair[0]
        if low == "г" and prev == "з":
            latin = "gh"
        if ch != low and latin:
            latin = latin[0].upper() + latin[1:]
        out.append(latin)
        in_word = True
        prev = low
    return "".join(out)


_WORDS_EN: dict[str, str] = {
    "та": "and",
    "район": "Raion",
    "область": "Oblast",
    "громада": "hromada",
    "територіальна": "",
    "міська": "urban",
    "селищна": "settlement",
    "сільська": "rural",
}


def english_name(name_uk: str) -> str:
    """An English name for an upstream Ukrainian one.

    Keeps the administrative words readable in English ("Raion", "hromada",
    "Oblast") and drops the "м." (city) prefix, so "м. Харків" is "Kharkiv" and
    "Аджамська територіальна громада" is "Adzhamska hromada".
    """
    words = name_uk.split()
    if words and words[0] == "м.":
        words = words[1:]
    out = []
    for word in words:
        english = _WORDS_EN.get(word)
        if english is None:
            out.append(transliterate_uk(word))
        elif english:
            out.append(english)
    return " ".join(out)


_CITY_PREFIX = "м. "


def _city_alias(name: str, city_sep: str) -> str | None:
    """ "Ірпінь" from "м. Ірпінь та Ірпінська територіальна громада" (or "м. Київ")."""
    if not name.startswith(_CITY_PREFIX):
        return None
    rest = name[len(_CITY_PREFIX) :]
    return rest.split(city_sep, 1)[0].strip() or None


# Names people use that the upstream tables do not spell out.
_EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "UA-30": ("місто Київ", "Kyiv City"),
    "UA-40": ("місто Севастополь", "Sevastopol City"),
    "UA-43": ("Крим", "АР Крим", "Crimea"),
}

_LEVEL_RANK: dict[RegionLevel, int] = {
    RegionLevel.CITY: 0,
    RegionLevel.HROMADA: 1,
    RegionLevel.OBLAST: 2,
    RegionLevel.RAION: 3,
    RegionLevel.COUNTRY: 4,
}

# ---------------------------------------------------------------------------
# ukrainealarm /regions matching
# ---------------------------------------------------------------------------

_HROMADA_SUFFIX = re.compile(r"(?:\s(?:територіальна|міська|селищна|сільська))+\s+громада$")
_CITY_AND = re.compile(r"^м\.\s*.+? та ")


def _match_key(name: str) -> str:
    """A key under which ukrainealarm and alerts.in.ua names of one place agree.

    ukrainealarm calls a city hromada "м. Кропивницький та Кропивницька
    територіальна громада" where other tables say "Кропивницька територіальна
    громада", and the hromada kind (міська/селищна/сільська) is not always given.
    """
    key = _CITY_AND.sub("", normalize_name(name))
    return _HROMADA_SUFFIX.sub(" громада", key)


def flatten_ukrainealarm_regions(payload: Any) -> list[UkrainealarmEntry]:
    """Flatten a ukrainealarm ``/api/v3/regions`` answer into (id, name, type, parentId), parents first.

    Accepts the ``{"states": [...]}`` object or a bare list of states.
    """
    states = payload.get("states", []) if isinstance(payload, Mapping) else payload
    out: list[UkrainealarmEntry] = []

    def walk(nodes: Iterable[Any], parent: str | None) -> None:
        for node in nodes or ():
            if not isinstance(node, Mapping) or node.get("regionId") in (None, ""):
                continue
            rid = str(node["regionId"])
            out.append((rid, str(node.get("regionName") or ""), str(node.get("regionType") or ""), parent))
            walk(node.get("regionChildIds") or (), rid)

    walk(states or (), None)
    return out


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


class RegionRegistry:
    """All known regions, looked up by code, upstream id or name.

    Built once (``load`` is cached) and never mutated, so it is safe to share
    between the poller, the web UI and tests without locks.
    """

    def __init__(
        self, regions: Iterable[Region], source_ids: dict[tuple[str, str], str] | None = None
    ) -> None:
        """``source_ids`` maps (source kind, upstream id as str) -> region code."""
        self._regions: dict[str, Region] = {r.code: r for r in regions}
        self._source_ids: dict[tuple[str, str], str] = {
            (_source_key(src), str(sid).strip()): code
            for (src, sid), code in (source_ids or {}).items()
            if code in self._regions
        }
        self._children: dict[str, list[str]] = {}
        for region in self._regions.values():
            if region.parent is not None:
                self._children.setdefault(region.parent, []).append(region.code)

    @cached_property
    def _name_index(self) -> tuple[dict[str, list[str]], list[tuple[str, str, bool]]]:
        """Names and aliases, normalized: (name -> codes, [(name, code, is_primary)]).

        Built on first name lookup, not in ``__init__``: most CLI runs only map
        ids, and ``load`` must stay fast. Aliases let "Ірпінь" find
        "м. Ірпінь та Ірпінська територіальна громада". Two threads racing here
        both build the same value, which is harmless.
        """
        names: dict[str, list[str]] = {}
        search_names: list[tuple[str, str, bool]] = []
        # A city that has its own record ("м. Харків") owns its bare name, so the
        # hromada around it ("м. Харків та Харківська …") does not get that alias.
        own_city_names = {
            (r.oblast, normalize_name(r.name_uk[len(_CITY_PREFIX) :]))
            for r in self._regions.values()
            if r.level in (RegionLevel.CITY, RegionLevel.OBLAST) and r.name_uk.startswith(_CITY_PREFIX)
        }
        for region in self._regions.values():
            primary = {normalize_name(n) for n in (region.name_uk, region.name_en) if n}
            aliases: set[str] = set(normalize_name(a) for a in _EXTRA_ALIASES.get(region.code, ()))
            uk_alias = _city_alias(region.name_uk, " та ")
            if uk_alias is not None:
                is_hromada = " та " in region.name_uk
                if not (is_hromada and (region.oblast, normalize_name(uk_alias)) in own_city_names):
                    aliases.add(normalize_name(uk_alias))
                    if is_hromada and " and " in region.name_en:
                        aliases.add(normalize_name(region.name_en.split(" and ", 1)[0]))
            if region.level is RegionLevel.OBLAST and region.name_uk.endswith(" область"):
                aliases.add(normalize_name(english_name(region.name_uk)))  # "Kyivska Oblast"
            aliases -= primary
            for key in primary:
                names.setdefault(key, []).append(region.code)
                search_names.append((key, region.code, True))
            for key in aliases:
                names.setdefault(key, []).append(region.code)
                search_names.append((key, region.code, False))
        return names, search_names

    # -- construction ------------------------------------------------------

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegionRegistry:
        """Build from the regions.json document (plain lists, no validation: the generator validated)."""
        construct = Region.model_construct
        regions = [
            construct(
                code=code,
                level=RegionLevel(level),
                name_uk=name_uk,
                name_en=name_en,
                parent=parent,
                oblast=oblast,
            )
            for code, level, name_uk, name_en, parent, oblast in data["regions"]
        ]
        source_ids = {
            (source, sid): code for source, table in data["source_ids"].items() for sid, code in table.items()
        }
        return cls(regions, source_ids)

    @classmethod
    def load(cls) -> RegionRegistry:
        """The registry shipped as package data (alertd/data/regions.json)."""
        return _load_packaged()

    def to_json(self) -> dict[str, Any]:
        """The regions.json document for this registry (the generator writes this)."""
        tables: dict[str, dict[str, str]] = {}
        for (source, sid), code in sorted(
            self._source_ids.items(), key=lambda kv: (kv[0][0], _id_sort(kv[0][1]))
        ):
            tables.setdefault(source, {})[sid] = code
        return {
            "format": 1,
            "columns": ["code", "level", "name_uk", "name_en", "parent", "oblast"],
            "regions": [
                [r.code, r.level.value, r.name_uk, r.name_en, r.parent, r.oblast]
                for r in self._regions.values()
            ],
            "source_ids": tables,
        }

    def learn_ukrainealarm_regions(self, entries: Iterable[UkrainealarmEntry] | Any) -> RegionRegistry:
        """A new registry that also knows the ukrainealarm ids of a live ``/regions`` answer.

        The shipped data only has the ukrainealarm ids we could verify; the daemon
        can fetch ``/api/v3/regions`` at start and learn the rest by name. Ids the
        registry already maps keep their mapping. ``entries`` is a list of
        (regionId, regionName, regionType, parentId) or the raw JSON answer.
        """
        if isinstance(entries, Mapping):
            entries = flatten_ukrainealarm_regions(entries)
        entries = list(entries)
        matched, unmatched = self.match_ukrainealarm_regions(entries)
        merged = dict(self._source_ids)
        for sid, code in matched.items():
            merged.setdefault(("ukrainealarm", sid), code)
        # Places no name matches still get a region under their parent, so an alert
        # there reaches the raion's and oblast's subscribers instead of nobody.
        known = {sid: code for (src, sid), code in merged.items() if src == "ukrainealarm"}
        added: list[Region] = []
        levels = {"state": RegionLevel.OBLAST, "district": RegionLevel.RAION}
        for raw_id, name, rtype, parent in unmatched:
            uid = str(raw_id)  # ids are keyed as text, whatever type the JSON gave them
            if ("ukrainealarm", uid) in merged:
                continue
            parent_code = known.get(str(parent)) if parent is not None else None
            parent_region = self._regions.get(parent_code) if parent_code else None
            if parent_region is None:
                continue
            code = f"ukrainealarm:{uid}"
            added.append(
                Region(
                    code=code,
                    level=levels.get(str(rtype).casefold(), RegionLevel.HROMADA),
                    name_uk=str(name),
                    name_en=english_name(str(name)),
                    parent=parent_region.code,
                    oblast=parent_region.oblast,
                )
            )
            merged[("ukrainealarm", uid)] = code
            known[uid] = code
        if not added and merged == self._source_ids:
            return self
        return RegionRegistry([*self._regions.values(), *added], merged)

    def match_ukrainealarm_regions(
        self, entries: Iterable[UkrainealarmEntry]
    ) -> tuple[dict[str, str], list[UkrainealarmEntry]]:
        """Match ukrainealarm regions to registry codes by name; returns (id -> code, unmatched).

        States match oblast names; Districts match raions and Communities match
        hromadas (then cities) inside the oblast of their parent. Only a unique
        match counts: a wrong mapping would send alerts to the wrong town, a
        missing one only produces a warning.
        """
        entries = list(entries)
        known = {sid: code for (src, sid), code in self._source_ids.items() if src == "ukrainealarm"}
        matched: dict[str, str] = {}
        unmatched: list[UkrainealarmEntry] = []
        by_key: dict[str, list[Region]] = {}
        for region in self._regions.values():
            by_key.setdefault(_match_key(region.name_uk), []).append(region)
        for rid, name, rtype, parent in entries:
            sid = str(rid).strip()
            parent_code = None if parent is None else (matched.get(str(parent)) or known.get(str(parent)))
            parent_region = self._regions.get(parent_code) if parent_code else None
            oblast = parent_region.oblast if parent_region is not None else None
            same_id = self._regions.get(self._source_ids.get(("alerts_in_ua", sid), ""))
            if same_id is not None and normalize_name(same_id.name_uk) == normalize_name(str(name)):
                # Both Ukrainian feeds number most places alike; an identical name under the
                # same number is the surest match (it also settles look-alike names in one raion).
                matched[sid] = same_id.code
                continue
            candidates = by_key.get(_match_key(name), [])
            kind = rtype.casefold()
            if kind == "state":
                levels: tuple[RegionLevel, ...] = (RegionLevel.OBLAST,)
            elif kind == "district":
                levels = (RegionLevel.RAION,)
            else:
                levels = (RegionLevel.HROMADA, RegionLevel.CITY)
            found = None
            for level in levels:
                pool = [c for c in candidates if c.level is level and (oblast is None or c.oblast == oblast)]
                if parent_code is not None:
                    inside = [c for c in pool if self.contains(parent_code, c.code)]
                    pool = inside or pool
                if len(pool) == 1:
                    found = pool[0]
                    break
            if found is None and kind == "state":
                # A trimmed answer may list a community at top level (the shipped
                # excerpt does: "м. Харків та Харківська територіальна громада").
                pool = [c for c in candidates if c.level in (RegionLevel.HROMADA, RegionLevel.CITY)]
                found = pool[0] if len(pool) == 1 else None
            if found is None:
                unmatched.append((sid, name, rtype, parent))
            else:
                matched[sid] = found.code
        return matched, unmatched

    # -- lookups ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions.values())

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def get(self, code: str) -> Region | None:
        return self._regions.get(code)

    def by_source_id(self, source: str, source_id: str | int) -> Region | None:
        """source is "alerts_in_ua" or "ukrainealarm"."""
        code = self._source_ids.get((_source_key(source), str(source_id).strip()))
        return None if code is None else self._regions.get(code)

    def source_ids_of(self, code: str) -> list[tuple[str, str]]:
        """Upstream (source, id) pairs for a region, e.g. to ask ukrainealarm about one place."""
        return sorted(key for key, c in self._source_ids.items() if c == code)

    def resolve(
        self,
        source: str,
        source_id: str | int,
        *,
        name: str = "",
        level: RegionLevel = RegionLevel.HROMADA,
        oblast_hint: str | int | None = None,
    ) -> tuple[Region, str | None]:
        """Region for an upstream id; unknown ids give ``<source>:<id>`` plus a warning text.

        An id missing from the ukrainealarm table but equal to an alerts.in.ua
        uid whose name matches ``name`` resolves to that region (the sources
        share one numbering; the name guards against the day they do not).

        Never raises: an upstream adding a new hromada must produce an alert
        (placed at least in its oblast when the hint allows) and a log line, not
        a crashed poll.
        """
        sid = str(source_id).strip()
        try:
            known = self.by_source_id(source, sid)
            if known is not None:
                return known, None
            twin = self._same_numbered_twin(source, sid, name)
            if twin is not None:
                return twin, None
            oblast = self._oblast_from_hint(source, oblast_hint)
            try:
                lvl = RegionLevel(level)
            except ValueError:
                lvl = RegionLevel.HROMADA
            name = str(name or "")
            region = Region.model_construct(
                code=f"{source}:{sid}",
                level=lvl,
                name_uk=name,
                name_en=english_name(name),
                parent=oblast,
                oblast=oblast,
            )
        except Exception as exc:  # a lookup table must not take the poller down
            region = Region.model_construct(
                code=f"{source}:{sid}", level=RegionLevel.HROMADA, name_uk=str(name or ""), name_en=""
            )
            return region, f"{source}: region id {sid!r} could not be resolved ({exc!r})"
        where = f" in {oblast}" if oblast else ""
        label = f" ({name})" if name else ""
        return region, f"{source}: unknown region id {sid!r}{label}; using {region.code}{where}"

    def _same_numbered_twin(self, source: str, sid: str, name: str) -> Region | None:
        """The other source's region with this id, if its name says it is the same place.

        ukrainealarm ids and alerts.in.ua uids are one numbering (every id we
        could check agrees), but the shipped data only maps the ukrainealarm ids
        we saw. Taking the same number is only safe with a name to confirm it,
        so without a matching ``name`` this returns None.
        """
        if not name:
            return None
        key = _match_key(name)
        for other in SOURCES:
            if other == _source_key(source):
                continue
            twin = self.by_source_id(other, sid)
            if twin is not None and _match_key(twin.name_uk) == key:
                return twin
        return None

    def _oblast_from_hint(self, source: str, hint: str | int | None) -> str | None:
        """ISO code of the oblast a hint names: an ISO code or an upstream id of any known region."""
        if hint is None or hint == "":
            return None
        text = str(hint).strip()
        direct = self._regions.get(text)
        if direct is not None:
            return direct.oblast
        hinted = self.by_source_id(source, text)
        if hinted is None:
            for other in SOURCES:
                hinted = self.by_source_id(other, text)
                if hinted is not None:
                    break
        return None if hinted is None else hinted.oblast

    def find(self, name: str) -> list[Region]:
        """Exact name match, Ukrainian or English, case- and apostrophe-insensitive.

        Several places share names (73 hromada names repeat across oblasts), so
        this returns all of them, cities and hromadas first.
        """
        codes = self._name_index[0].get(normalize_name(name), [])
        regions = [self._regions[c] for c in dict.fromkeys(codes)]
        return sorted(regions, key=lambda r: (_LEVEL_RANK[r.level], r.code))

    def search(self, query: str, limit: int = 20) -> list[Region]:
        """Typeahead: exact matches, then prefix (of the name or a word in it), then substring.

        Within a class cities and hromadas come before oblasts and raions, because
        people mostly subscribe to the town they live in.
        """
        q = normalize_name(query)
        if not q or limit <= 0:
            return []
        best: dict[str, tuple[int, int, int]] = {}  # code -> (match class, matched length, alias?)
        word_start = " " + q
        for key, code, primary in self._name_index[1]:
            if key == q:
                score = 0
            elif key.startswith(q):
                score = 1
            elif word_start in key or ("-" + q) in key:
                score = 2
            elif q in key:
                score = 3
            else:
                continue
            rank = (score, len(key), 0 if primary else 1)
            if code not in best or rank < best[code]:
                best[code] = rank
        ordered = sorted(
            best,
            key=lambda c: (
                best[c][0],
                _LEVEL_RANK[self._regions[c].level],
                best[c][1],
                best[c][2],
                self._regions[c].name_uk,
            ),
        )
        return [self._regions[c] for c in ordered[:limit]]

    # -- hierarchy ------------------------------------------------------------

    def children(self, code: str) -> list[Region]:
        """Regions directly below ``code``."""
        return [self._regions[c] for c in self._children.get(code, [])]

    def ancestors(self, code: str | Region) -> list[Region]:
        """Parent first, up to the oblast (and country if present).

        Also takes a Region not in the registry (from ``resolve``) and walks up from its parent.
        """
        region = code if isinstance(code, Region) else self._regions.get(code)
        out: list[Region] = []
        seen: set[str] = set()
        parent = region.parent if region is not None else None
        while parent is not None and parent not in seen:
            seen.add(parent)
            found = self._regions.get(parent)
            if found is None:
                break
            out.append(found)
            parent = found.parent
        return out

    def contains(self, outer: str | Region, inner: str | Region) -> bool:
        """True when ``inner`` is ``outer`` or lies inside it."""
        outer_code = outer.code if isinstance(outer, Region) else outer
        inner_code = inner.code if isinstance(inner, Region) else inner
        if outer_code == inner_code:
            return True
        return any(r.code == outer_code for r in self.ancestors(inner))

    def related(self, a: str | Region, b: str | Region) -> bool:
        """True when a and b lie on one line of the hierarchy (either contains the other)."""
        return self.contains(a, b) or self.contains(b, a)

    def oblasts(self) -> list[Region]:
        """The 27 first-level divisions, by ISO code."""
        return sorted(
            (r for r in self._regions.values() if r.level is RegionLevel.OBLAST), key=lambda r: r.code
        )


def _source_key(source: str) -> str:
    return _SOURCE_ALIASES.get(source.strip().casefold(), source)


def _id_sort(sid: str) -> tuple[int, str]:
    return (int(sid), "") if sid.isdigit() else (1 << 62, sid)


@cache
def _load_packaged() -> RegionRegistry:
    text = resources.files("alertd.data").joinpath("regions.json").read_text(encoding="utf-8")
    return RegionRegistry.from_json(json.loads(text))
