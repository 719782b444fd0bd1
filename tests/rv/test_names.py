"""rv.names: a DICOM Person Name formatted for people, and searched as people type it.
Examples first, then properties over every text hypothesis makes (PS3.5 6.2.1)."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydicom.valuerep import PersonName as PydicomPersonName

from rv.names import (
    NameGroup,
    PersonName,
    age_text,
    clean,
    display_name,
    fold,
    pn_compose,
    pn_parse,
    pn_values,
    search_key,
    search_matches,
    search_tokens,
)


@pytest.mark.parametrize(("value", "shown"), [
    ("SMITH^John^A", "SMITH, John A."),
    ("Smith^John^Alan", "SMITH, John A."),
    ("SMITH^JOHN^ALAN BOB", "SMITH, John A. B."),
    ("SMITH^John^A^Dr^Jr", "SMITH, Dr John A., Jr"),
    ("SMITH^John=スミス^ジョン", "SMITH, John (スミス ジョン)"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "YAMADA, Tarou (山田 太郎; やまだ たろう)"),
    ("=山田^太郎=やまだ^たろう", "山田 太郎 (やまだ たろう)"),
    ("==やまだ^たろう", "やまだ たろう"),
    ("Müller^Hans-Peter", "MÜLLER, Hans-Peter"),
    ("O'BRIEN^MARY-JANE", "O'BRIEN, Mary-Jane"),
    ("de la Cruz^María José", "DE LA CRUZ, María José"),
    ("^John", "John"),
    ("SMITH", "SMITH"),
    ("Test^VMAT01", "TEST, VMAT01"),     # a word with a digit is not "corrected"
    ("SMITH^^^^III", "SMITH, III"),
    ("  SMITH  ^  John   Paul ", "SMITH, John Paul"),
    ("SMITH^John^^^", "SMITH, John"),      # trailing empty components
    ("SMITH^John==", "SMITH, John"),       # trailing empty groups
    ("SMITH^John\\JONES^Ann", "SMITH, John / JONES, Ann"),  # two values
    ("A^B^C^D^E^F", "A, D B C., E^F"),     # a sixth component stays in the fifth
    ("SMITH^Jo\u202ehn", "SMITH, John"),   # a bidirectional override is dropped
    ("SMITH^\x1b$BJohn\x1b(B", "SMITH, John"),  # stray ISO 2022 escapes are dropped
    ("^^^", ""),
    ("", ""),
    ("=^=", ""),
])
def test_examples(value: str, shown: str) -> None:
    assert display_name(value) == shown


def test_any_kind_of_value() -> None:
    assert display_name(None) == ""
    assert display_name(b"SMITH^John") == "SMITH, John"
    assert display_name(b"\xff\xfe^\x00") != ""  # replacement characters are something
    assert display_name(PydicomPersonName("Yamada^Tarou=山田^太郎")) == \
        "YAMADA, Tarou (山田 太郎)"
    assert display_name(12345) == "12345"


@pytest.mark.parametrize(("query", "found"), [
    ("Smith John", True), ("smith, j", True), ("SMITH^JOHN", True), ("john smith", True),
    ("smi", True), ("j smith", True), ("Smith, John A.", True), ("smith alan", True),
    ("jones", False), ("smith jo x", False), ("mith", False),
])
def test_search_as_people_type(query: str, found: bool) -> None:
    assert search_matches(search_key("SMITH^John^Alan"), query) is found


@pytest.mark.parametrize("query", ["muller", "Muller", "MÜLLER", "müller", "mueller",
                                   "Mueller, Hans", "hans peter", "hanspeter", "muller^h"])
def test_accent_free_spellings(query: str) -> None:
    assert search_matches(search_key("MÜLLER^Hans-Peter"), query)


def test_folding() -> None:
    assert fold("Łódź Søren Æsa Straße") == "LODZ SOREN AESA STRASSE"
    assert fold("ジョン") == "ジョン"  # the voiced mark of kana is part of the letter
    assert search_tokens("  O'Brien,  d'ARCY ") == ["O", "BRIEN", "D", "ARCY"]
    assert search_key("O'BRIEN^Mary") == " O BRIEN OBRIEN MARY "
    assert search_key("") == "" and search_tokens("^, =") == []


def test_age() -> None:
    today = date(2026, 3, 2)
    assert age_text(date(1950, 3, 2), today) == "76 y"
    assert age_text(date(1950, 3, 3), today) == "75 y"
    assert age_text(date(2024, 9, 1), today) == "18 mo"
    assert age_text(date(2026, 2, 20), today) == "10 d"
    assert age_text(None, today) == "" and age_text(date(2027, 1, 1), today) == ""


# --- properties -------------------------------------------------------------------------

# Anything at all, separators and controls included
anything = st.text(alphabet=st.characters(codec=None), max_size=80)
separators = st.sampled_from(["^", "=", "\\", " ", "\x1b", "\x00", "\u202e", "\t"])
pn_like = st.lists(st.one_of(st.text(max_size=6), separators), max_size=20).map("".join)
# One component as a standard value has it: no separators, no controls, trimmed
component = st.text(alphabet=st.characters(
    blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"),
    blacklist_characters="^=\\"), max_size=12).map(clean)
group = st.builds(NameGroup, component, component, component, component, component)
name = st.builds(PersonName, group, group, group)
# Names people have: letters of Latin (with accents), Greek, Cyrillic, kana and ideographs
letters = st.characters(whitelist_categories=("Lu", "Ll", "Lo"),
                        max_codepoint=0x9FFF).filter(lambda c: not c.isspace())
word = st.text(alphabet=letters, min_size=1, max_size=10)


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(anything, pn_like, st.binary(max_size=40), st.none()))
@example(value="\udc80^x")  # a lone surrogate (surrogateescape) must not reach the page
def test_never_raises_and_shows_no_control_characters(value: object) -> None:
    shown = display_name(value)
    assert isinstance(shown, str)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in shown)
    shown.encode("utf-8")  # what the page sends
    assert isinstance(search_key(value), str) and isinstance(search_tokens(value), list)


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(anything, pn_like))
def test_never_empty_for_a_non_empty_name(value: str) -> None:
    if any(pn_parse(v) for v in pn_values(value)):
        assert display_name(value).strip()


@settings(max_examples=300, deadline=None)
@given(n=name)
def test_round_trip_from_components(n: PersonName) -> None:
    assert pn_parse(pn_compose(n)) == n


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(anything, pn_like))
def test_round_trip_from_a_value(value: str) -> None:
    once = pn_parse(value)
    assert pn_parse(pn_compose(once)) == once
    assert display_name(pn_compose(once)) == display_name(value.split("\\")[0])


@settings(max_examples=300, deadline=None)
@given(family=word, given_=word)
def test_family_name_first_in_upper_case(family: str, given_: str) -> None:
    shown = display_name(f"{family}^{given_}")
    assert shown.startswith(family.upper() + ", ")
    assert fold(given_) in fold(shown)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(anything, pn_like, name.map(pn_compose)))
def test_the_shown_name_finds_its_patient(value: str) -> None:
    """Searching for the name as the page shows it (or as the DICOM value has it) finds it."""
    key = search_key(value)
    assert search_matches(key, display_name(value))
    assert search_matches(key, value)


@settings(max_examples=300, deadline=None)
@given(family=word, given_=word, middle=st.one_of(st.just(""), word))
def test_the_ways_people_type_a_name(family: str, given_: str, middle: str) -> None:
    key = search_key(f"{family}^{given_}^{middle}")
    for query in (f"{family} {given_}", f"{given_} {family}", f"{family.lower()}, "
                  f"{given_[0].lower()}", f"{family}^{given_}".upper(), family.lower(),
                  _strip_accents(family), display_name(f"{family}^{given_}^{middle}")):
        assert search_matches(key, query), query


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(anything, pn_like), query=st.one_of(anything, word))
def test_a_search_word_must_begin_a_word_of_the_name(value: str, query: str) -> None:
    """What SQL asks (the key contains " TOKEN") is: every word typed begins a word of the
    name; so a different family name is not found."""
    key = search_key(value)
    words = key.split()
    assert search_matches(key, query) == all(
        any(w.startswith(t) for w in words) for t in search_tokens(query))
    assert not search_matches(search_key("SMITH^John"), "Jones John")


def _strip_accents(text: str) -> str:
    """What a user types without accents: Müller as Muller (a kana's voiced mark is part of
    the letter, not an accent: ガ is not カ)."""
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", text):
        if not (unicodedata.combining(c) and out and ord(out[-1]) < 0x0530):
            out.append(c)
    return unicodedata.normalize("NFC", "".join(out))


@settings(max_examples=300, deadline=None)
@given(born=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
       later=st.integers(0, 120 * 366))
def test_age_in_whole_years(born: date, later: int) -> None:
    today = born + timedelta(days=later)
    text = age_text(born, today)
    assert text
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if text.endswith(" y"):
        assert int(text[:-2]) == years >= 2
    else:
        assert years < 2
