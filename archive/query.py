"""C-FIND matching over the archive index (PS3.4 C.2.2.2, C.4.1, C.6.1 / C.6.2).

Pure-ish: an identifier (a pydicom Dataset) becomes a Django ``Q`` over the index models and
the matches become response identifiers; nothing here reads a stored file. The network side
(dicom_net/qr.py) only calls `find`, `retrieve_instances` and reports `InvalidQuery`.

Choices the conformance statement documents (docs/CONFORMANCE.md):
- Person Name (PN) matching is case-insensitive (PS3.4 C.2.2.2.1 leaves it to the SCP);
  every other string matching is case-sensitive.
- Single value, wildcard (``*`` any run, ``?`` one character), range (DA, TM), list of UIDs
  (UI, and ModalitiesInStudy) and universal (empty value) matching. Sequence matching is not
  supported: a sequence key is returned empty and does not restrict the match.
- Keys of the query level and the levels above it match ("relational" upward, as most
  archives do); keys of lower levels or unknown to the index are returned empty.
- A time range bound with fewer digits covers the whole of its last unit: "-1100" matches
  up to 11:00:59.999999.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from django.db.models import Count, Model, Q, QuerySet
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from archive.models import Instance, Patient, Series, Study

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
Root = Literal["patient", "study"]
Kind = Literal["text", "pn", "uid", "date", "time", "int", "cs_list"]


class InvalidQuery(Exception):
    """The identifier cannot be matched; `status` is the PS3.4 C.4.1.1.4 failure status."""

    def __init__(self, comment: str, status: int = 0xA900) -> None:
        super().__init__(comment)
        self.comment = comment
        self.status = status


@dataclass(frozen=True)
class Key:
    level: str
    field: str  # the model field at `level`
    kind: Kind


# The attributes the index holds, by level (PS3.4 C.6.1.1.2 - C.6.1.1.5).
KEYS: dict[str, Key] = {
    "PatientName": Key("PATIENT", "patient_name", "pn"),
    "PatientID": Key("PATIENT", "patient_id", "text"),
    "IssuerOfPatientID": Key("PATIENT", "issuer_of_patient_id", "text"),
    "PatientBirthDate": Key("PATIENT", "birth_date", "date"),
    "PatientSex": Key("PATIENT", "sex", "text"),
    "StudyInstanceUID": Key("STUDY", "study_instance_uid", "uid"),
    "StudyDate": Key("STUDY", "study_date", "date"),
    "StudyTime": Key("STUDY", "study_time", "time"),
    "AccessionNumber": Key("STUDY", "accession_number", "text"),
    "StudyID": Key("STUDY", "study_id", "text"),
    "StudyDescription": Key("STUDY", "study_description", "text"),
    "ReferringPhysicianName": Key("STUDY", "referring_physician_name", "pn"),
    "SeriesInstanceUID": Key("SERIES", "series_instance_uid", "uid"),
    "Modality": Key("SERIES", "modality", "text"),
    "SeriesNumber": Key("SERIES", "series_number", "int"),
    "SeriesDescription": Key("SERIES", "series_description", "text"),
    "SeriesDate": Key("SERIES", "series_date", "date"),
    "SeriesTime": Key("SERIES", "series_time", "time"),
    "SOPInstanceUID": Key("IMAGE", "sop_instance_uid", "uid"),
    "SOPClassUID": Key("IMAGE", "sop_class_uid", "uid"),
    "InstanceNumber": Key("IMAGE", "instance_number", "int"),
    "ContentDate": Key("IMAGE", "content_date", "date"),
    "ContentTime": Key("IMAGE", "content_time", "time"),
}
# Matched through the series below a study (PS3.4 C.6.1.1.3: ModalitiesInStudy).
STUDY_MODALITIES = Key("STUDY", "series__modality", "cs_list")

UNIQUE_KEYS = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID",
               "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
MODELS: dict[str, type[Model]] = {"PATIENT": Patient, "STUDY": Study, "SERIES": Series,
                                  "IMAGE": Instance}
# From a level's model up to an ancestor level's model.
_UP = {"PATIENT": "patient__", "STUDY": "study__", "SERIES": "series__"}

# Counts (PS3.4 C.6.1.1.2 - C.6.1.1.4): keyword -> (level, relation to count from that level).
COUNTS: dict[str, tuple[str, str]] = {
    "NumberOfPatientRelatedStudies": ("PATIENT", "studies"),
    "NumberOfPatientRelatedSeries": ("PATIENT", "studies__series"),
    "NumberOfPatientRelatedInstances": ("PATIENT", "studies__series__instances"),
    "NumberOfStudyRelatedSeries": ("STUDY", "series"),
    "NumberOfStudyRelatedInstances": ("STUDY", "series__instances"),
    "NumberOfSeriesRelatedInstances": ("SERIES", "instances"),
}
# Lists gathered per study with one extra query per page of studies.
STUDY_LISTS = {"ModalitiesInStudy": "series__modality",
               "SOPClassesInStudy": "series__instances__sop_class_uid"}
ALWAYS = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle"}


def prefix(*, level: str, of: str) -> str:
    """The ORM path from the model of `level` up to the model of level `of` (at or above)."""
    path = ""
    for step in reversed(LEVELS[LEVELS.index(of) + 1:LEVELS.index(level) + 1]):
        path += _UP[LEVELS[LEVELS.index(step) - 1]]
    return path


def query_level(identifier: Dataset, *, root: Root) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        raise InvalidQuery(f"Query/Retrieve Level {level or '(missing)'!r} is not one of "
                           + ", ".join(LEVELS))
    if root == "study" and level == "PATIENT":
        raise InvalidQuery("the Study Root model has no PATIENT level")
    return level


# --- matching of one value (PS3.4 C.2.2.2) ---------------------------------------------

def _text_value(value: Any) -> str:
    return str(value if value is not None else "").strip()


def wildcard_regex(pattern: str) -> str:
    """PS3.4 C.2.2.2.4: '*' any run of characters (also none), '?' exactly one."""
    out = []
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "^" + "".join(out) + "$"


def _string_q(path: str, value: str, *, ci: bool) -> Q:
    if value.strip("*") == "":
        return Q()  # '*' alone matches everything, like an empty value
    if "*" in value or "?" in value:
        return Q(**{f"{path}__{'iregex' if ci else 'regex'}": wildcard_regex(value)})
    return Q(**{f"{path}__{'iexact' if ci else 'exact'}": value})


def parse_date(text: str) -> date:
    cleaned = text.strip().replace(".", "")
    try:
        if len(cleaned) != 8 or not cleaned.isdigit():
            raise ValueError
        return date(int(cleaned[:4]), int(cleaned[4:6]), int(cleaned[6:]))
    except ValueError:
        raise InvalidQuery(f"{text!r} is not a DICOM date (YYYYMMDD)") from None


def _range(value: str) -> tuple[str, str] | None:
    if "-" not in value:
        return None
    low, _, high = value.partition("-")
    if not low and not high:
        raise InvalidQuery("a range needs at least one bound")
    return low.strip(), high.strip()


def _date_q(path: str, value: str) -> Q:
    bounds = _range(value)
    if bounds is None:
        return Q(**{path: parse_date(value)})
    low, high = bounds
    q = Q()
    if low:
        q &= Q(**{f"{path}__gte": parse_date(low)})
    if high:
        q &= Q(**{f"{path}__lte": parse_date(high)})
    return q


_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _time(text: str, *, upper: bool) -> str:
    text = text.replace(":", "").strip()
    if not _TIME.match(text):
        raise InvalidQuery(f"{text!r} is not a DICOM time (HHMMSS.FFFFFF)")
    if not upper:
        return text
    whole, _, frac = text.partition(".")
    return f"{whole}{'5959'[len(whole) - 2:]}.{frac.ljust(6, '9')}"


def _time_q(path: str, value: str) -> Q:
    """Stored times are text as received (HHMMSS[.FFFFFF]), so bounds compare as text."""
    bounds = _range(value)
    if bounds is None:
        return Q(**{path: _time(value, upper=False)})
    low, high = bounds
    q = ~Q(**{path: ""})
    if low:
        q &= Q(**{f"{path}__gte": _time(low, upper=False)})
    if high:
        q &= Q(**{f"{path}__lte": _time(high, upper=True)})
    return q


def value_q(key: Key, value: Any, path: str) -> Q:
    """The Q for one key's matching value; Q() for universal matching."""
    if isinstance(value, (MultiValue, list, tuple)):
        values = [_text_value(v) for v in value if _text_value(v)]
        if key.kind not in ("uid", "cs_list"):
            raise InvalidQuery(f"{key.field}: list matching is only for UIDs (PS3.4 "
                               "C.2.2.2.2)")
        if len(values) > 1:
            return Q(**{f"{path}__in": values})
        value = values[0] if values else ""
    text = _text_value(value)
    if key.kind == "pn":
        text = text.rstrip("^=")  # trailing empty components carry no meaning (PS3.5 6.2)
    if text.strip("*") == "":
        return Q()  # universal matching: empty, or '*' alone (PS3.4 C.2.2.2.3, C.2.2.2.4)
    if key.kind == "date":
        return _date_q(path, text)
    if key.kind == "time":
        return _time_q(path, text)
    if key.kind == "int":
        try:
            return Q(**{path: int(text)})
        except ValueError:
            raise InvalidQuery(f"{key.field}: {text!r} is not an integer") from None
    if key.kind == "uid":
        if "*" in text or "?" in text:
            raise InvalidQuery(f"{key.field}: wildcards are not allowed in a UID")
        return Q(**{path: text})
    return _string_q(path, text, ci=key.kind == "pn")


def _keys_in(identifier: Dataset) -> list[str]:
    return [elem.keyword for elem in identifier if elem.keyword]


def identifier_q(identifier: Dataset, *, level: str) -> Q:
    """AND of every matching key of `level` and the levels above it."""
    q = Q()
    depth = LEVELS.index(level)
    for keyword in _keys_in(identifier):
        key = KEYS.get(keyword)
        if keyword == "ModalitiesInStudy" and depth == 1:
            key = STUDY_MODALITIES
        if key is None or LEVELS.index(key.level) > depth:
            continue
        elem = identifier[keyword]
        if elem.VR == "SQ":
            continue
        q &= value_q(key, elem.value, prefix(level=level, of=key.level) + key.field)
    return q


def matches(identifier: Dataset, *, level: str) -> QuerySet[Any]:
    """The matching rows of the level's model, each once. A subquery, so that counts
    annotated later count all related rows, not only those a key matched on."""
    manager = MODELS[level]._default_manager
    return manager.filter(pk__in=manager.filter(identifier_q(identifier, level=level))
                          .values("pk"))


# --- responses ---------------------------------------------------------------------------

def _format(key: Key, value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return value


def find(identifier: Dataset, *, root: Root, retrieve_ae: str,
         chunk: int = 500) -> Iterator[Dataset]:
    """The C-FIND responses: one identifier per match with exactly the requested keys."""
    level = query_level(identifier, root=root)
    depth = LEVELS.index(level)
    requested = _keys_in(identifier)
    fields: dict[str, str] = {}
    for keyword in requested:
        key = KEYS.get(keyword)
        if key is not None and LEVELS.index(key.level) <= depth:
            fields[keyword] = prefix(level=level, of=key.level) + key.field
    counts = {kw: rel for kw, (lvl, rel) in COUNTS.items() if kw in requested and lvl == level}
    lists = {kw: rel for kw, rel in STUDY_LISTS.items() if kw in requested and level == "STUDY"}

    qs = matches(identifier, level=level)
    if counts:
        qs = qs.annotate(**{f"n_{kw}": Count(rel, distinct=True) for kw, rel in counts.items()})
    columns = ["pk", *fields.values(), *(f"n_{kw}" for kw in counts)]
    rows = qs.order_by("pk").values(*columns)
    page: list[dict[str, Any]] = []
    for row in rows.iterator(chunk_size=chunk):
        page.append(row)
        if len(page) >= chunk:
            yield from _respond(page, identifier, level, requested, fields, counts, lists,
                                retrieve_ae)
            page = []
    if page:
        yield from _respond(page, identifier, level, requested, fields, counts, lists,
                            retrieve_ae)


def _respond(page: list[dict[str, Any]], identifier: Dataset, level: str, requested: list[str],
             fields: dict[str, str], counts: dict[str, str], lists: dict[str, str],
             retrieve_ae: str) -> Iterator[Dataset]:
    gathered: dict[str, dict[int, list[str]]] = {}
    for keyword, rel in lists.items():
        per: dict[int, list[str]] = {}
        pairs = (Study.objects.filter(pk__in=[r["pk"] for r in page])
                 .exclude(**{rel: None}).values_list("pk", rel).distinct().order_by("pk", rel))
        for pk, value in pairs:
            if value:
                per.setdefault(pk, []).append(value)
        gathered[keyword] = per
    for row in page:
        ds = Dataset()
        texts: list[str] = []
        for keyword in requested:
            if keyword in fields:
                value = _format(KEYS[keyword], row[fields[keyword]])
                if isinstance(value, str):
                    texts.append(value)
                setattr(ds, keyword, value)
            elif keyword in counts:
                setattr(ds, keyword, row[f"n_{keyword}"])
            elif keyword in gathered:
                setattr(ds, keyword, gathered[keyword].get(row["pk"], []))
            elif keyword not in ALWAYS:
                elem = identifier[keyword]
                ds.add_new(elem.tag, elem.VR, [] if elem.VR == "SQ" else None)
        for elem in identifier:
            if not elem.keyword:  # private or unknown tags: not in the index, returned empty
                ds.add_new(elem.tag, elem.VR, None)
        ds.QueryRetrieveLevel = level
        ds.RetrieveAETitle = retrieve_ae
        if "SpecificCharacterSet" in identifier or any(not t.isascii() for t in texts):
            ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the index keeps decoded text
        yield ds


def retrieve_instances(identifier: Dataset, *, root: Root) -> QuerySet[Instance]:
    """The instances a C-MOVE / C-GET identifier names (PS3.4 C.4.2.2.1, C.4.3.2.1): the
    unique key of the level (one UID or a list) and those of the levels above."""
    level = query_level(identifier, root=root)
    unique = UNIQUE_KEYS[level]
    value = identifier.get(unique)
    if value is None or not [v for v in (value if isinstance(value, MultiValue) else [value])
                             if _text_value(v)]:
        raise InvalidQuery(f"a retrieve at {level} level needs {unique}")
    q = Q()
    for lvl in LEVELS[:LEVELS.index(level) + 1]:
        keyword = UNIQUE_KEYS[lvl]
        if keyword in identifier and not (root == "study" and lvl == "PATIENT"):
            key = KEYS[keyword]
            raw = identifier[keyword].value
            if key.kind != "uid" and _text_value(raw) and any(c in str(raw) for c in "*?"):
                raise InvalidQuery(f"{keyword}: wildcards are not allowed in a retrieve")
            q &= value_q(key, raw, prefix(level="IMAGE", of=lvl) + key.field)
    return Instance.objects.filter(q).order_by("pk")
