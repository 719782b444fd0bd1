"""People's names as people read them, and as they type them into a search box (issue 15).

A DICOM Person Name (PN, PS3.5 6.2.1) is up to three component groups separated by "="
(alphabetic, ideographic, phonetic), each of up to five components separated by "^": family
name, given name, middle name, name prefix, name suffix. Trailing empty components and groups
may be left out. `display_name("SMITH^John^Alan^Dr^Jr=スミス^ジョン")` is
"SMITH, Dr John A., Jr (スミス ジョン)": the family name upper case, the given names as
written (title case when written all in one case), middle names as initials, the other
groups in parentheses.

`search_key` turns a name into the normalised search column rv.models.Patient.search_name:
every word of every component, accent-folded and upper-cased ("MÜLLER" is MULLER, and its
German spelling MUELLER too), each after a space; `search_tokens` turns what a user typed
("smith, j", "Smith John", "SMITH^JOHN", "muller") into words, each of which must begin a
word of the key (`search_matches`, and rv.selectors.patient_list in SQL).

Pure functions, no Django: they never raise, whatever the value (garbage, bytes, None).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

GROUP_SEP, COMPONENT_SEP, VALUE_SEP = "=", "^", "\\"
COMPONENTS = ("family", "given", "middle", "prefix", "suffix")

# ISO 2022 escape sequences a badly decoded value may still carry (PS3.5 6.1.2.5.3)
_ESCAPE = re.compile(r"\x1b[\x20-\x2f]*[\x30-\x7e]?")
_SPACES = re.compile(r"\s+")
# Control, format (bidirectional overrides, zero-width), surrogate, private use and
# unassigned characters are not part of anybody's name: they are dropped before display.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Letters NFKD does not split into a base letter and a mark (folded by hand)
_FOLD = str.maketrans({
    "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ł": "L", "ł": "l",
    "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "ı": "i", "Ħ": "H",
    "ħ": "h", "ß": "ss", "ẞ": "SS", "ĸ": "q", "Ŋ": "N", "ŋ": "n", "Ŧ": "T", "ŧ": "t",
})
_GERMAN = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "ä": "ae", "ö": "oe", "ü": "ue"})


@dataclass(frozen=True)
class NameGroup:
    """One component group of a PN value, each component cleaned (no controls, single
    spaces, trimmed)."""

    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""

    def components(self) -> tuple[str, str, str, str, str]:
        return (self.family, self.given, self.middle, self.prefix, self.suffix)

    def __bool__(self) -> bool:
        return any(self.components())


@dataclass(frozen=True)
class PersonName:
    alphabetic: NameGroup = NameGroup()
    ideographic: NameGroup = NameGroup()
    phonetic: NameGroup = NameGroup()

    def groups(self) -> tuple[NameGroup, NameGroup, NameGroup]:
        return (self.alphabetic, self.ideographic, self.phonetic)

    def __bool__(self) -> bool:
        return any(self.groups())


def _text(value: object) -> str:
    """Any value as text: bytes as UTF-8 (bad bytes replaced), pydicom's PersonName as its
    string, None as ""."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # a value whose str() fails is no name at all
        return ""


def clean(text: str) -> str:
    """Text with escape sequences, control and format characters dropped and runs of
    white space made one space, trimmed."""
    text = _ESCAPE.sub("", text)
    text = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    return _SPACES.sub(" ", text).strip()


def pn_parse(value: object) -> PersonName:
    """The first value of a PN (a backslash starts a second value) as its groups and
    components. More than three groups or five components (not allowed) are kept in the
    last one, so nothing is lost."""
    text = _text(value).split(VALUE_SEP, 1)[0]
    groups = []
    for raw in text.split(GROUP_SEP, 2):
        # (a separator ending a component is a left-out component, however it got there)
        parts = [clean(p).rstrip(COMPONENT_SEP + GROUP_SEP + " ")
                 for p in raw.split(COMPONENT_SEP, 4)]
        parts += [""] * (5 - len(parts))
        groups.append(NameGroup(*parts))
    groups += [NameGroup()] * (3 - len(groups))
    return PersonName(*groups)


def pn_compose(name: PersonName) -> str:
    """The PN value of a name: trailing empty components and groups left out."""
    out = [COMPONENT_SEP.join(g.components()).rstrip(COMPONENT_SEP) for g in name.groups()]
    return GROUP_SEP.join(out).rstrip(GROUP_SEP)


def pn_values(value: object) -> list[str]:
    """The values of a possibly multi-valued PN (backslash-separated)."""
    return _text(value).split(VALUE_SEP)


def _one_case(text: str) -> bool:
    cased = [ch for ch in text if ch.isupper() or ch.islower()]
    return bool(cased) and (all(ch.isupper() for ch in cased) or
                            all(ch.islower() for ch in cased))


def _title(text: str) -> str:
    """JOHN -> John, MARY-JANE -> Mary-Jane, d'arcy -> D'Arcy; mixed case is kept, and so
    is a word with a digit in it (a test name such as VMAT01 is no name to correct)."""
    if not _one_case(text):
        return text
    return " ".join(_title_word(w) for w in text.split(" "))


def _title_word(word: str) -> str:
    if any(ch.isdigit() for ch in word):
        return word
    out, start = [], True
    for ch in word.lower():
        out.append(ch.upper() if start and len(ch.upper()) == 1 else ch)
        start = not ch.isalnum()
    return "".join(out)


def _initials(text: str) -> str:
    """Alan Bob -> A. B.; a word with no letter or digit is kept as written."""
    out = []
    for word in text.split(" "):
        first = next((ch for ch in word if _has_alnum(ch)), "")
        if not first:
            out.append(word)
        else:
            up = first.upper()
            out.append((up if len(up) == 1 else first) + ".")
    return " ".join(w for w in out if w)


def _has_alnum(ch: str) -> bool:
    """A letter or digit, or a character that is one written otherwise (㋀ is 1月)."""
    return ch.isalnum() or any(c.isalnum() for c in unicodedata.normalize("NFKD", ch))


def _alphabetic(g: NameGroup) -> str:
    """SMITH, Dr John A., Jr"""
    family = g.family.upper()
    rest = " ".join(p for p in (_title(g.prefix), _title(g.given), _initials(g.middle)) if p)
    text = f"{family}, {rest}" if family and rest else family or rest
    if g.suffix:
        text = f"{text}, {g.suffix}" if text else g.suffix
    return text


def _other(g: NameGroup) -> str:
    """An ideographic or phonetic group as its script writes it: family name first."""
    return " ".join(p for p in (g.prefix, g.family, g.given, g.middle, g.suffix) if p)


def _display_one(value: str) -> str:
    name = pn_parse(value)
    first = _alphabetic(name.alphabetic)
    others = [t for t in (_other(name.ideographic), _other(name.phonetic)) if t]
    if not first and others:
        first, others = others[0], others[1:]
    others = [t for i, t in enumerate(others) if t != first and t not in others[:i]]
    return f"{first} ({'; '.join(others)})" if others and first else first


def display_name(value: object) -> str:
    """The name formatted for people ("" when there is none); several values are joined
    with " / ". Never raises."""
    try:
        shown = [s for s in (_display_one(v) for v in pn_values(value)) if s]
        return " / ".join(shown)
    except Exception:  # pragma: no cover - a last guard: a banner must always render
        return clean(_text(value).replace(COMPONENT_SEP, " ").replace(GROUP_SEP, " "))


def family_name(value: object) -> str:
    """The alphabetic family name, upper case (the ideographic one when there is none)."""
    name = pn_parse(value)
    return name.alphabetic.family.upper() or name.ideographic.family or name.phonetic.family


# --- search ---------------------------------------------------------------------------

def fold(text: str, *, upper_first: bool = True) -> str:
    """Upper case without accents: "Müller" -> "MULLER", "Łódź" -> "LODZ", "Søren" ->
    "SOREN"; letters of scripts without case (kana, ideographs) stay as they are (their
    voiced marks too). Upper case first (what a query gets): a letter's capital may be two
    letters (ᾀ is ἈΙ) as someone typing in capitals writes it; `upper_first=False` drops
    the accents first (ᾀ is Α), the other spelling the search key also keeps."""
    if upper_first:
        text = text.upper()
    kept: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) and kept and ord(kept[-1]) < 0x0530:
            continue  # an accent on a Latin, Greek or Cyrillic letter
        kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept).translate(_FOLD)).upper()


def _words(text: str) -> list[str]:
    """Words of folded text: runs of letters, digits and the marks that belong to them."""
    out: list[str] = []
    word: list[str] = []
    for ch in text:
        if ch.isalnum() or (word and unicodedata.category(ch).startswith("M")):
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def _variants(raw: str) -> list[str]:
    """The words a component gives the key: each word, accent-folded; a word joined across
    hyphens and apostrophes (O'BRIEN: O, BRIEN, OBRIEN); the German spelling of umlauts
    (MÜLLER: MULLER and MUELLER)."""
    out: list[str] = []
    spellings = [raw]
    if raw.translate(_GERMAN) != raw:
        spellings.append(raw.translate(_GERMAN))
    for text in spellings:
        for chunk in clean(text).split(" "):
            for upper_first in (True, False):
                words = _words(fold(chunk, upper_first=upper_first))
                out += words
                if len(words) > 1:
                    out.append("".join(words))
    return out


_SEPARATORS = str.maketrans({COMPONENT_SEP: " ", GROUP_SEP: " ", VALUE_SEP: " "})


def _search_text(text: str) -> str:
    """Text as searched: the PN separators are spaces, control and format characters are
    dropped one by one (an escape sequence is not read, so nothing after it is lost)."""
    return "".join(" " if ch.isspace() else ch for ch in text.translate(_SEPARATORS)
                   if ch.isspace() or unicodedata.category(ch) not in _DROPPED_CATEGORIES)


def search_key(value: object) -> str:
    """The search column of a name: " WORD WORD ... " (a space before each word and at the
    end), every word of every component and group of every value, folded, as displayed
    and as written; "" for none."""
    seen: dict[str, None] = {}
    text = _text(value)
    for v in pn_values(text):
        for group in pn_parse(v).groups():
            for part in group.components():
                for word in _variants(part):
                    seen.setdefault(word, None)
    for word in _variants(_search_text(text)):  # the same, unless escapes were in it
        seen.setdefault(word, None)
    return "".join(f" {w}" for w in seen) + (" " if seen else "")


def search_tokens(query: object) -> list[str]:
    """What a user typed as search words: folded, split at anything that is not a letter
    or digit ("smith, j" -> SMITH, J; "SMITH^JOHN" -> SMITH, JOHN)."""
    return list(dict.fromkeys(_words(fold(_search_text(_text(query))))))


def search_matches(key: str, query: object) -> bool:
    """Whether every search word begins a word of the key (what patient_list asks SQL)."""
    return all(f" {token}" in key for token in search_tokens(query))


# --- age -----------------------------------------------------------------------------

def age_text(birth: date | None, today: date) -> str:
    """Age at `today`: "76 y", "18 mo" under two years, "12 d" under a month; "" when the
    birth date is unknown or after today."""
    if isinstance(birth, datetime):
        birth = birth.date()
    if isinstance(today, datetime):
        today = today.date()
    if not isinstance(birth, date) or birth > today:
        return ""
    months = (today.year - birth.year) * 12 + today.month - birth.month - (
        today.day < birth.day)
    if months >= 24:
        return f"{months // 12} y"
    if months >= 1:
        return f"{months} mo"
    return f"{(today - birth).days} d"
