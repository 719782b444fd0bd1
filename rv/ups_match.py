"""C-FIND matching, C-FIND responses and N-GET for the Unified Procedure Step SCP (pure:
pydicom only, no ORM, no networking). rv.ups re-exports the public names.

Matching follows PS3.4 C.2.2.2 as PS3.4 CC.2.8.3 (UPS C-FIND SCP behaviour) asks:

- C.2.2.2.1 single value matching: exact; PN case-insensitive (the SCP's choice the standard
  allows for PN), trailing ``^`` of a name and surrounding spaces are not significant.
- C.2.2.2.2 list of UID matching: a UI key with several values matches any of them.
- C.2.2.2.3 universal matching: a zero-length key matches everything, the attribute absent
  included; a key absent from the item matches only universally.
- C.2.2.2.4 wild card matching: ``*`` any run of characters (zero included), ``?`` one
  character, for the text VRs only (not DA, TM, DT, UI nor the numeric VRs); a key of a
  lone ``*`` is universal.
- C.2.2.2.5 range matching of DA, TM and DT: ``a-b``, ``-b``, ``a-`` inclusive. A bound of
  reduced precision stands for its whole period (``-20240115`` includes all of that day,
  PS3.5 6.2 DT/TM precision); DT values are compared as instants: an explicit ``&ZZXX``
  offset wins, else Timezone Offset From UTC (0008,0201) of the identifier (for keys) or of
  the stored item (for values), else the SCP's local time. A single DA/TM/DT value matches
  the values inside the period it denotes (at full precision: the same instant).
- C.2.2.2.6 sequence matching: a sequence key whose item holds non-universal keys matches
  when one stored item matches all of them; a zero-length sequence or an item of universal
  keys only is universal matching.
- Values of a multi-valued stored attribute match when any one of them does.

Never keys (always universal): group 0000 command elements and group lengths, Specific
Character Set, Query/Retrieve Level and View, Timezone Offset From UTC (it qualifies DT
values), Code Meaning (0008,0104) at any depth (codes match on value and scheme; a device's
spelling of the meaning never hides a workitem), private elements, and the Transaction UID
(0008,1195): it is the access lock of PS3.4 CC.1.1 and is never matched nor returned
(CC.2.7.3, CC.2.8.3). A malformed DA/TM/DT key raises InvalidIdentifier (answer 0xA900).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

COMMAND_GROUP = 0x0000
SPECIFIC_CHARACTER_SET = 0x00080005
QUERY_RETRIEVE_LEVEL = 0x00080052
QUERY_RETRIEVE_VIEW = 0x00080053
TIMEZONE_OFFSET_FROM_UTC = 0x00080201
TRANSACTION_UID = 0x00081195
CODE_MEANING = 0x00080104

# Control keys: they never select an item (see the module docstring).
CONTROL_KEYS = frozenset({SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL, QUERY_RETRIEVE_VIEW,
                          TIMEZONE_OFFSET_FROM_UTC, TRANSACTION_UID, CODE_MEANING})
# PS3.4 C.2.2.2.4: the VRs wild cards apply to.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_NUMERIC_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
_TEMPORAL_VRS = frozenset({"DA", "TM", "DT"})


class InvalidIdentifier(ValueError):
    """A key the SCP cannot interpret (e.g. a DT range that is not a range): the C-FIND
    answer is 0xA900 "Identifier does not match SOP Class" with this message."""


def strip_command_elements(ds: Dataset) -> list[str]:
    """Remove the group 0000 (command) elements some devices put inside a data set, in
    place; returns their keywords (or tags when unknown) so the caller can log them."""
    removed: list[str] = []
    for tag in list(ds.keys()):
        if BaseTag(tag).group == COMMAND_GROUP:
            removed.append(keyword_for_tag(tag) or str(BaseTag(tag)))
            del ds[tag]
    return removed


# ---------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Zones:
    """Default UTC offsets for DT values without their own: the key's, the item's."""

    key: tzinfo | None
    item: tzinfo | None


def matches(identifier: Dataset, item: Dataset) -> bool:
    """True when `item` (a stored workitem) matches every key of a C-FIND `identifier`
    (PS3.4 C.2.2.2, CC.2.8.3). Raises InvalidIdentifier for a malformed DA/TM/DT key."""
    zones = _Zones(key=_dataset_offset(identifier), item=_dataset_offset(item))
    return _match_dataset(identifier, item, zones)


def identifier_problems(identifier: Dataset) -> list[str]:
    """Malformed keys of an identifier (empty list: usable), checked up front so a bad
    query gets 0xA900 even when the worklist is empty."""
    problems: list[str] = []
    _check_keys(identifier, problems)
    return problems


def _check_keys(keys: Dataset, problems: list[str]) -> None:
    for tag in list(keys.keys()):
        if _ignored(tag):
            continue
        try:
            elem = keys[tag]
        except Exception as exc:  # undecodable element: report it
            problems.append(f"{_name(tag)}: cannot be read ({exc})")
            continue
        if _vr(elem) == "SQ":
            for sub in elem.value or []:
                _check_keys(sub, problems)
            continue
        for value in _values(elem):
            if _vr(elem) in _TEMPORAL_VRS and _temporal_key(_vr(elem), str(value), None) is None:
                problems.append(f"{_name(tag)}: {value!r} is not a {_vr(elem)} value or range")


def _ignored(tag: int) -> bool:
    t = BaseTag(tag)
    return (t.group == COMMAND_GROUP or t.element == 0 or t.is_private
            or int(t) in CONTROL_KEYS)


def _match_dataset(keys: Dataset, item: Dataset, zones: _Zones) -> bool:
    for tag in list(keys.keys()):
        if _ignored(tag):
            continue
        try:
            key = keys[tag]
        except Exception as exc:
            raise InvalidIdentifier(f"{_name(tag)}: cannot be read ({exc})") from exc
        if not _match_element(key, item, zones):
            return False
    return True


def _match_element(key: DataElement, item: Dataset, zones: _Zones) -> bool:
    vr = _vr(key)
    if vr == "SQ":
        return _match_sequence(key, item, zones)
    wanted = _values(key)
    if _universal(vr, wanted):
        return True
    stored = _stored(item, key.tag)
    if stored is None or _vr(stored) == "SQ":
        return False
    have = _values(stored)
    if not have:
        return False
    if vr in _TEMPORAL_VRS:
        return any(_temporal_match(vr, str(w), str(h), zones) for w in wanted for h in have)
    return any(_value_match(vr, w, h) for w in wanted for h in have)


def _match_sequence(key: DataElement, item: Dataset, zones: _Zones) -> bool:
    selective = [sub for sub in (key.value or []) if _selective(sub)]
    if not selective:
        return True
    stored = _stored(item, key.tag)
    if stored is None or _vr(stored) != "SQ" or not stored.value:
        return False
    return any(_match_dataset(sub, each, zones) for sub in selective for each in stored.value)


def _selective(keys: Dataset) -> bool:
    """True when a key item holds at least one non-universal key."""
    for tag in list(keys.keys()):
        if _ignored(tag):
            continue
        try:
            elem = keys[tag]
        except Exception:  # an unreadable key selects; matching reports it
            return True
        vr = _vr(elem)
        if vr == "SQ":
            if any(_selective(sub) for sub in elem.value or []):
                return True
        elif not _universal(vr, _values(elem)):
            return True
    return False


def _universal(vr: str, values: list[Any]) -> bool:
    return not values or (vr in WILDCARD_VRS and all(str(v).strip() == "*" for v in values))


def _stored(item: Dataset, tag: int) -> DataElement | None:
    if tag not in item:
        return None
    try:
        return item[tag]
    except Exception:  # an unreadable stored value matches nothing
        return None


def _vr(elem: DataElement) -> str:
    """The element's VR; UN (an implicit-VR private or unknown) falls back to the
    dictionary's when the tag is known."""
    vr = str(elem.VR)
    if vr == "UN" or " or " in vr:
        try:
            return str(dictionary_VR(elem.tag)).split(" or ")[0]
        except KeyError:
            return vr
    return vr


def _values(elem: DataElement) -> list[Any]:
    """The non-empty values of an element (multi-valued or not), strings stripped."""
    value = elem.value
    if value is None or value == "" or value == b"":
        return []
    raw: list[Any] = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out: list[Any] = []
    for v in raw:
        if v is None:
            continue
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        if not isinstance(v, int | float) or isinstance(v, str):
            v = str(v).strip().rstrip("\0")
            if not v:
                continue
        out.append(v)
    return out


def _value_match(vr: str, wanted: Any, have: Any) -> bool:
    if vr in _NUMERIC_VRS:
        a, b = _number(wanted), _number(have)
        return a is not None and a == b
    if vr == "PN":
        return _pn_match(str(wanted), str(have))
    w, h = str(wanted), str(have)
    if vr in WILDCARD_VRS and ("*" in w or "?" in w):
        return _wildcard(w, case_insensitive=False).fullmatch(h) is not None
    return w == h


def _number(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _wildcard(pattern: str, *, case_insensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def _pn_normal(name: str) -> str:
    groups = [g.strip().rstrip("^").strip() for g in name.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _pn_match(wanted: str, have: str) -> bool:
    key = _pn_normal(wanted)
    whole = _pn_normal(have)
    candidates = [whole] if "=" in key else [whole, *(_pn_normal(g) for g in whole.split("="))]
    if "*" in key or "?" in key:
        pattern = _wildcard(key, case_insensitive=True)
        return any(pattern.fullmatch(c) for c in candidates)
    return any(key.casefold() == c.casefold() for c in candidates)


# ------------------------------------------------------------------- DA, TM, DT values

_DT = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})"
                 r"(?:\.(\d{1,6}))?)?)?)?)?)?([+-]\d{4})?")
_TM = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?")
_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")
_ONE_US = timedelta(microseconds=1)

Bounds = tuple[Any, Any]  # (first, last) instant of a value's period, inclusive


def _offset(text: str | None) -> tzinfo | None:
    """A ``+HHMM``/``-HHMM`` UTC offset (PS3.5 DT, Timezone Offset From UTC), or None."""
    if not text:
        return None
    m = re.fullmatch(r"([+-])(\d{2})(\d{2})", text.strip())
    if not m or int(m.group(3)) >= 60 or int(m.group(2)) > 14:
        return None
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(-delta if m.group(1) == "-" else delta)


def _dataset_offset(ds: Dataset) -> tzinfo | None:
    try:
        return _offset(str(ds.get("TimezoneOffsetFromUTC", "") or ""))
    except Exception:
        return None


def _aware(moment: datetime, zone: tzinfo | None) -> datetime:
    if zone is not None:
        return moment.replace(tzinfo=zone)
    try:
        return moment.astimezone()  # naive: the SCP's local time (PS3.5 DT without offset)
    except (OverflowError, OSError, ValueError):
        return moment.replace(tzinfo=UTC)


def dt_bounds(text: str, default_zone: tzinfo | None = None) -> tuple[datetime, datetime] | None:
    """The first and last instant (aware) a DT value stands for, or None if malformed."""
    m = _DT.fullmatch(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, off = m.groups()
    zone = _offset(off) if off else default_zone
    if off and zone is None:
        return None
    try:
        start = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                         int(minute or 0), int(second or 0), int((fraction or "0").ljust(6, "0")))
    except ValueError:
        return None
    try:
        end = _period_end(start, month=month, day=day, hour=hour, minute=minute,
                          second=second, fraction=fraction) - _ONE_US
    except (ValueError, OverflowError):
        end = datetime.max  # the period runs past year 9999
    return _aware(start, zone), _aware(end, zone)


def _period_end(start: datetime, *, month: str | None, day: str | None, hour: str | None,
                minute: str | None, second: str | None, fraction: str | None) -> datetime:
    """The first instant after the period a DT of this precision stands for."""
    if fraction:
        return start + timedelta(microseconds=10 ** (6 - len(fraction)))
    if second:
        return start + timedelta(seconds=1)
    if minute:
        return start + timedelta(minutes=1)
    if hour:
        return start + timedelta(hours=1)
    if day:
        return start + timedelta(days=1)
    if month:
        return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def tm_bounds(text: str) -> tuple[int, int] | None:
    """The first and last microsecond of the day a TM value stands for, or None."""
    m = _TM.fullmatch(text.strip())
    if not m:
        return None
    hour, minute, second, fraction = m.groups()
    if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
        return None
    start = ((int(hour) * 60 + int(minute or 0)) * 60 + int(second or 0)) * 1_000_000
    start += int((fraction or "0").ljust(6, "0"))
    if fraction:
        span = 10 ** (6 - len(fraction))
    else:
        span = 1_000_000 * (1 if second else 60 if minute else 3600)
    return start, start + span - 1


def da_bounds(text: str) -> tuple[date, date] | None:
    """A DA value (``YYYYMMDD``, or the ACR-NEMA ``YYYY.MM.DD``) as a one-day period."""
    m = _DA.fullmatch(text.strip())
    if not m:
        return None
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return day, day


def _bounds(vr: str, text: str, zone: tzinfo | None) -> Bounds | None:
    if vr == "DA":
        return da_bounds(text)
    if vr == "TM":
        return tm_bounds(text)
    return dt_bounds(text, zone)


def _temporal_key(vr: str, text: str, zone: tzinfo | None) -> Bounds | None:
    """A DA/TM/DT key as an inclusive (low, high) period, either end None when open;
    a single value is the period it denotes. None when malformed."""
    text = text.strip()
    single = _bounds(vr, text, zone)
    if single is not None:
        return single
    if text.count("-") == 0 or text == "-":
        return None
    # The range separator: the first "-" that leaves a valid (or empty) bound on each side
    # (a DT bound may carry a negative UTC offset).
    for at in [i for i, c in enumerate(text) if c == "-"]:
        left, right = text[:at].strip(), text[at + 1:].strip()
        low = _bounds(vr, left, zone) if left else (None, None)
        high = _bounds(vr, right, zone) if right else (None, None)
        if low is not None and high is not None:
            return low[0], high[1]
    return None


def _temporal_match(vr: str, wanted: str, have: str, zones: _Zones) -> bool:
    period = _temporal_key(vr, wanted, zones.key)
    if period is None:
        raise InvalidIdentifier(f"{wanted!r} is not a {vr} value or range")
    value = _bounds(vr, have, zones.item)
    if value is None:
        return wanted.strip() == have.strip()  # a malformed stored value: literal only
    low, high = period
    instant = value[0]
    try:
        return (low is None or low <= instant) and (high is None or instant <= high)
    except (OverflowError, TypeError):  # the ends of time, or mixed naive/aware: no match
        return False


# ---------------------------------------------------------------- C-FIND and N-GET


def response(identifier: Dataset, item: Dataset) -> Dataset:
    """The C-FIND response data set for a matching `item` (PS3.4 C.4.1.3, CC.2.8.3): only
    the attributes the identifier asks for (plus Specific Character Set when the item has
    one); a requested key the item lacks comes back zero-length; a requested sequence
    returns each stored item reduced to the requested sub-keys, or whole when the request
    is a zero-length sequence or an empty item; never the Transaction UID."""
    out = Dataset()
    if SPECIFIC_CHARACTER_SET in item:
        out[SPECIFIC_CHARACTER_SET] = deepcopy(item[SPECIFIC_CHARACTER_SET])
    _reduce(identifier, item, out)
    return out


def _reduce(keys: Dataset, item: Dataset, out: Dataset) -> None:
    for tag in list(keys.keys()):
        t = BaseTag(tag)
        if (t.group == COMMAND_GROUP or t.element == 0 or int(t) == TRANSACTION_UID
                or int(t) == SPECIFIC_CHARACTER_SET):
            continue
        try:
            key: DataElement | None = keys[tag]
        except Exception:  # an unreadable request key still names a key
            key = None
        stored = _stored(item, tag)
        if stored is None:
            out.add(_empty(t, key))
            continue
        template = _template(key) if key is not None and _vr(key) == "SQ" else None
        if template is None or _vr(stored) != "SQ" or len(template) == 0:
            out.add(deepcopy(stored))
            continue
        reduced = []
        for each in stored.value:
            sub = Dataset()
            _reduce(template, each, sub)
            reduced.append(sub)
        out.add(DataElement(t, "SQ", Sequence(reduced)))


def _template(key: DataElement) -> Dataset:
    """The union of the sub-keys of a requested sequence's items."""
    merged = Dataset()
    for sub in key.value or []:
        for tag in list(sub.keys()):
            if tag not in merged:
                merged[tag] = sub[tag]
    return merged


def _empty(tag: BaseTag, key: DataElement | None) -> DataElement:
    try:
        vr = str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        vr = str(key.VR) if key is not None else "UN"
    return DataElement(tag, vr, Sequence() if vr == "SQ" else None)


def nget(requested: Iterable[int] | None, item: Dataset) -> Dataset:
    """The N-GET attribute list (PS3.4 CC.2.7.3): the requested tags the item has (all of
    the item when `requested` is None or empty), never the Transaction UID nor group 0000;
    Specific Character Set comes along whenever the item has one, so the text decodes."""
    tags: list[BaseTag] = []
    for t in requested or list(item.keys()):
        try:
            tags.append(Tag(t))
        except (ValueError, OverflowError, TypeError):
            continue  # not a tag: nothing to return for it
    out = Dataset()
    for tag in tags:
        if int(tag) == TRANSACTION_UID or tag.group == COMMAND_GROUP or tag not in item:
            continue
        out.add(deepcopy(item[tag]))
    if SPECIFIC_CHARACTER_SET in item and SPECIFIC_CHARACTER_SET not in out:
        out.add(deepcopy(item[SPECIFIC_CHARACTER_SET]))
    return out


def _name(tag: int) -> str:
    t = BaseTag(tag)
    keyword = keyword_for_tag(t)
    return f"{keyword} {t}" if keyword else str(t)
