"""UPS C-FIND matching (PS3.4 C.2.2.2 as CC.2.8.3 asks), C-FIND responses and N-GET:
examples from the TDW-II worklist query (RO-58), each matching kind, and properties."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rv import ups
from tests.rv.ups_items import CLAIM_UID, code, tdd_query, workitem

# Malformed DT keys and stored values are the point of some tests; pydicom warns on them.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")


def _with(ds: Dataset, **values: object) -> Dataset:
    out = deepcopy(ds)
    for keyword, value in values.items():
        setattr(out, keyword, value)
    return out


# ------------------------------------------------------------ the TDW-II query (RO-58)


def test_tdd_query_matches_the_fraction_scheduled_on_its_machine() -> None:
    assert ups.matches(tdd_query(), workitem())


def test_tdd_query_for_another_machine_does_not_match() -> None:
    assert not ups.matches(tdd_query(station="HALCYON2"), workitem())


def test_station_code_matches_on_value_when_scheme_is_empty_or_absent() -> None:
    q = tdd_query()
    q.ScheduledStationNameCodeSequence = [code("TRUEBEAM1", None)]
    assert ups.matches(q, workitem())
    q.ScheduledStationNameCodeSequence = [code("TRUEBEAM1", "OTHER")]
    assert not ups.matches(q, workitem())


def test_workitem_code_needs_value_and_scheme_and_ignores_the_meaning() -> None:
    q = tdd_query()
    q.ScheduledWorkitemCodeSequence = [code("121726", "DCM", "some other spelling")]
    assert ups.matches(q, workitem())
    q.ScheduledWorkitemCodeSequence = [code("121726", "99LOCAL", "")]
    assert not ups.matches(q, workitem())
    q.ScheduledWorkitemCodeSequence = [code("121727", "DCM", "")]
    assert not ups.matches(q, workitem())


def test_code_value_and_scheme_must_hold_in_the_same_stored_item() -> None:
    item = workitem()
    item.ScheduledStationNameCodeSequence = [code("TRUEBEAM1", "A"), code("HALCYON2", "B")]
    q = tdd_query()
    q.ScheduledStationNameCodeSequence = [code("TRUEBEAM1", "B")]
    assert not ups.matches(q, item)
    q.ScheduledStationNameCodeSequence = [code("HALCYON2", "B")]
    assert ups.matches(q, item)


@pytest.mark.parametrize(("state", "expected"), [
    ("SCHEDULED", True), ("IN PROGRESS", False), ("", True)])
def test_procedure_step_state(state: str, expected: bool) -> None:
    assert ups.matches(tdd_query(state=state), workitem()) is expected


def test_procedure_step_state_list_of_values() -> None:
    q = tdd_query()
    q.ProcedureStepState = ["SCHEDULED", "IN PROGRESS"]
    assert ups.matches(q, workitem(state="IN PROGRESS"))
    assert not ups.matches(q, workitem(state="COMPLETED"))


@pytest.mark.parametrize(("start", "expected"), [
    ("", True),                                   # empty: universal
    ("20240115093000", True),                     # single value, same instant
    ("20240115", True),                           # single value of day precision
    ("20240116", False),
    ("20240115000000-20240115235959", True),      # range
    ("20240115-20240115", True),                  # a day's range covers the whole day
    ("20240115100000-", False),                   # open end, after
    ("-20240115093000", True),                    # open start, inclusive
    ("-20240115092959.999999", False),
    ("20240114-20240114", False),
])
def test_scheduled_start_datetime(start: str, expected: bool) -> None:
    assert ups.matches(tdd_query(start=start), workitem()) is expected


def test_key_absent_from_the_item_matches_only_universally() -> None:
    item = workitem()
    del item.WorklistLabel
    assert ups.matches(_with(tdd_query(), WorklistLabel=""), item)
    assert ups.matches(_with(tdd_query(), WorklistLabel="*"), item)
    assert not ups.matches(_with(tdd_query(), WorklistLabel="TRUEBEAM1 worklist"), item)
    assert not ups.matches(_with(tdd_query(), WorklistLabel="TRUE*"), item)


def test_stored_zero_length_value_does_not_match_a_value() -> None:
    item = _with(workitem(), WorklistLabel="")
    assert not ups.matches(_with(tdd_query(), WorklistLabel="X"), item)
    assert ups.matches(_with(tdd_query(), WorklistLabel=""), item)


# ---------------------------------------------------------------------- sequences


def test_sequence_key_universal_forms() -> None:
    item = workitem()
    del item.ScheduledStationNameCodeSequence
    for universal in (Sequence(), Sequence([Dataset()]),
                      Sequence([code("", "", "TRUEBEAM1")])):  # only a meaning: no key
        q = tdd_query()
        q.ScheduledStationNameCodeSequence = universal
        assert ups.matches(q, item)
    assert not ups.matches(tdd_query(), item)


def test_sequence_key_against_empty_stored_sequence() -> None:
    item = workitem()
    item.ScheduledStationNameCodeSequence = Sequence()
    assert not ups.matches(tdd_query(), item)


def test_nested_sequence_matching() -> None:
    q = Dataset()
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "2.25.100"
    inp = Dataset()
    inp.ReferencedSOPSequence = [ref]
    q.InputInformationSequence = [inp]
    assert ups.matches(q, workitem())
    ref.ReferencedSOPInstanceUID = "2.25.999"
    assert not ups.matches(q, workitem())


# --------------------------------------------------------------- single values, PN


@pytest.mark.parametrize(("key", "expected"), [
    ("Müller^Anna", True), ("MÜLLER^ANNA", True), ("müller^anna^^", True),
    ("Mü*", True), ("*ANNA", True), ("M?LLER^ANNA", True), ("M??LLER^ANNA", False),
    ("Müller", False), ("Mul*", False), ("*", True), ("Müller^Anna=", True),
])
def test_patient_name(key: str, expected: bool) -> None:
    assert ups.matches(_with(Dataset(), PatientName=key), workitem()) is expected


def test_person_name_component_groups() -> None:
    item = _with(workitem(), PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert ups.matches(_with(Dataset(), PatientName="YAMADA^TAROU"), item)
    assert ups.matches(_with(Dataset(), PatientName="山田^太郎"), item)
    assert ups.matches(_with(Dataset(), PatientName="Yamada*"), item)
    assert not ups.matches(_with(Dataset(), PatientName="Suzuki*"), item)


def test_wildcards_are_case_sensitive_outside_pn() -> None:
    item = workitem()
    assert ups.matches(_with(Dataset(), WorklistLabel="TRUEBEAM? *"), item)
    assert not ups.matches(_with(Dataset(), WorklistLabel="truebeam*"), item)
    assert not ups.matches(_with(Dataset(), ProcedureStepState="scheduled"), item)


def test_no_wildcards_for_uids() -> None:
    assert not ups.matches(_with(Dataset(), SOPInstanceUID="2.25.*"), workitem())


def test_list_of_uid_matching() -> None:
    q = Dataset()
    q.SOPInstanceUID = ["2.25.41", "2.25.42"]
    assert ups.matches(q, workitem())
    q.SOPInstanceUID = ["2.25.41", "2.25.43"]
    assert not ups.matches(q, workitem())


def test_multi_valued_stored_attribute_matches_any_value() -> None:
    item = _with(workitem(), ImageType=["ORIGINAL", "PRIMARY"])
    assert ups.matches(_with(Dataset(), ImageType="PRIMARY"), item)
    assert not ups.matches(_with(Dataset(), ImageType="DERIVED"), item)


def test_numeric_values_compare_as_numbers() -> None:
    item = _with(workitem(), NumberOfFractionsPlanned="30")
    assert ups.matches(_with(Dataset(), NumberOfFractionsPlanned="030"), item)
    assert not ups.matches(_with(Dataset(), NumberOfFractionsPlanned="31"), item)


# ------------------------------------------------------------------ DA / TM ranges


@pytest.mark.parametrize(("key", "expected"), [
    ("19600214", True), ("1960.02.14", True), ("19600215", False),
    ("19600101-19601231", True), ("-19600214", True), ("-19600213", False),
    ("19600214-", True), ("19600215-", False), ("19700101-19600101", False),
])
def test_date_range(key: str, expected: bool) -> None:
    assert ups.matches(_with(Dataset(), PatientBirthDate=key), workitem()) is expected


@pytest.mark.parametrize(("key", "expected"), [
    ("0930", True), ("09", True), ("093000.5", False), ("0800-1000", True),
    ("-0929", False), ("0930-", True), ("1000-", False), ("09:00-10:00", True),
])
def test_time_range(key: str, expected: bool) -> None:
    item = _with(workitem(), StudyTime="093000.25")
    assert ups.matches(_with(Dataset(), StudyTime=key), item) is expected


# ------------------------------------------------------------------------ DT ranges


@pytest.mark.parametrize(("key", "expected"), [
    # stored: 2024-01-15 09:30:00.123456 at +01:00, i.e. 08:30:00.123456 UTC
    ("20240115083000+0000-20240115083000.5+0000", True),
    ("20240115083000.2+0000-", False),
    ("-20240115083000.123456+0000", True),
    ("-20240115083000.123455+0000", False),
    ("20240115093000.123456+0100", True),       # single, same instant, same offset
    ("20240115033000.123456-0500", True),       # single, same instant, another offset
    ("20240115000000-0500-20240115235959-0500", True),
    ("20240115040000-0500-", False),
    ("2024-2024", True),                        # year range
    ("202401-202401", True),
    ("202402-", False),
])
def test_datetime_range_with_offsets_and_fractions(key: str, expected: bool) -> None:
    item = _with(workitem(), ScheduledProcedureStepStartDateTime="20240115093000.123456+0100")
    q = _with(tdd_query(), ScheduledProcedureStepStartDateTime=key)
    assert ups.matches(q, item) is expected


def test_datetime_without_offset_uses_the_datasets_timezone_offset() -> None:
    item = _with(workitem(), ScheduledProcedureStepStartDateTime="20240115093000",
                 TimezoneOffsetFromUTC="+0100")
    q = _with(tdd_query(), ScheduledProcedureStepStartDateTime="20240115083000+0000")
    assert ups.matches(q, item)
    q = _with(tdd_query(), ScheduledProcedureStepStartDateTime="20240115083000-20240115083000",
              TimezoneOffsetFromUTC="+0000")
    assert ups.matches(q, item)
    q.TimezoneOffsetFromUTC = "+0100"
    assert not ups.matches(q, item)


def test_datetime_without_any_offset_compares_as_local_times() -> None:
    item = workitem(start="20240115093000")
    assert ups.matches(tdd_query(start="20240115090000-20240115100000"), item)
    assert not ups.matches(tdd_query(start="20240115100000-20240115110000"), item)


@pytest.mark.parametrize("key", ["tomorrow", "2024011-", "20241315", "-", "20240115-x",
                                 "20240115093000+2500"])
def test_malformed_datetime_key_is_refused_with_a_clear_error(key: str) -> None:
    q = tdd_query(start=key)
    with pytest.raises(ups.InvalidIdentifier, match="DT"):
        ups.matches(q, workitem())
    assert any("ScheduledProcedureStepStartDateTime" in p for p in ups.identifier_problems(q))


def test_identifier_problems_empty_for_a_good_query() -> None:
    assert ups.identifier_problems(tdd_query(start="20240115-20240116")) == []


def test_malformed_stored_datetime_matches_only_literally() -> None:
    item = workitem(start="garbage")
    assert not ups.matches(tdd_query(start="20240115"), item)
    assert ups.matches(tdd_query(start=""), item)


# ------------------------------------------------------------------ ignored keys


def test_transaction_uid_is_never_a_key() -> None:
    item = workitem(state="IN PROGRESS", transaction_uid=CLAIM_UID)
    q = _with(tdd_query(state="IN PROGRESS"), TransactionUID="2.25.1")
    assert ups.matches(q, item)


def test_control_and_command_and_private_elements_are_not_keys() -> None:
    q = tdd_query()
    q.SpecificCharacterSet = "ISO_IR 100"
    q.QueryRetrieveLevel = "WORKLIST"
    q.add_new(0x00000100, "US", 0x0020)
    q.add_new(0x00290010, "LO", "ACME")
    q.add_new(0x00291001, "LO", "never stored")
    assert ups.matches(q, workitem())


# ------------------------------------------------------------------------ responses


def test_response_holds_exactly_what_was_asked() -> None:
    item = workitem(transaction_uid=CLAIM_UID)
    q = _with(tdd_query(), TransactionUID="", ReferencedRequestSequence=Sequence())
    rsp = ups.response(q, item)
    asked = set(q.keys()) - {0x00081195}
    assert set(rsp.keys()) == asked | {0x00080005}
    assert "TransactionUID" not in rsp
    assert rsp.PatientName == "Müller^Anna" and rsp.SpecificCharacterSet == "ISO_IR 192"
    assert rsp.ReferencedRequestSequence == Sequence()   # absent in the item: zero-length
    assert rsp.InputInformationSequence == item.InputInformationSequence  # whole items
    # a sequence asked with sub-keys comes back reduced to them, with the stored values
    assert list(rsp.ScheduledWorkitemCodeSequence[0].keys()) == [0x00080100, 0x00080102,
                                                                  0x00080104]
    assert rsp.ScheduledWorkitemCodeSequence[0].CodeMeaning == \
        "RT Treatment with Internal Verification"
    assert set(rsp.ScheduledStationNameCodeSequence[0].keys()) == {0x00080100, 0x00080102}


def test_response_absent_keys_are_zero_length_with_their_vr() -> None:
    q = _with(Dataset(), PatientComments="", ScheduledProcedureStepExpirationDateTime="")
    rsp = ups.response(q, workitem())
    assert rsp["PatientComments"].VR == "LT" and rsp.PatientComments in ("", None)
    assert rsp["ScheduledProcedureStepExpirationDateTime"].VR == "DT"


def test_response_reduces_nested_sequences_and_returns_whole_items_for_empty_ones() -> None:
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = ""
    inp = Dataset()
    inp.ReferencedSOPSequence = [ref]
    inp.DICOMRetrievalSequence = [Dataset()]
    q = Dataset()
    q.InputInformationSequence = [inp]
    rsp = ups.response(q, workitem())
    got = rsp.InputInformationSequence[0]
    assert set(got.keys()) == {0x00081199, 0x0040E021}
    assert set(got.ReferencedSOPSequence[0].keys()) == {0x00081155}
    assert got.DICOMRetrievalSequence[0].RetrieveAETitle == "VERITY"


def test_response_without_character_set_in_the_item_and_never_the_lock() -> None:
    item = workitem(transaction_uid=CLAIM_UID)
    del item.SpecificCharacterSet
    q = Dataset()
    q.SpecificCharacterSet = ""
    q.TransactionUID = ""
    q.add_new(0x00000100, "US", 0x0020)
    assert len(ups.response(q, item)) == 0


def test_response_is_a_copy() -> None:
    item = workitem()
    rsp = ups.response(tdd_query(), item)
    rsp.InputInformationSequence[0].StudyInstanceUID = "9.9"
    assert item.InputInformationSequence[0].StudyInstanceUID == "2.25.10"


# ---------------------------------------------------------------------------- N-GET


def test_nget_requested_tags_without_the_lock() -> None:
    item = workitem(state="IN PROGRESS", transaction_uid=CLAIM_UID)
    got = ups.nget([0x00100010, 0x00741000, 0x00081195, 0x00404010], item)
    assert set(got.keys()) == {0x00100010, 0x00741000, 0x00080005}


@pytest.mark.parametrize("requested", [None, []])
def test_nget_all(requested: list[int] | None) -> None:
    item = workitem(transaction_uid=CLAIM_UID)
    item.add_new(0x00000100, "US", 0x0120)
    got = ups.nget(requested, item)
    assert set(got.keys()) == set(item.keys()) - {0x00081195, 0x00000100}
    assert got.InputInformationSequence == item.InputInformationSequence


# ------------------------------------------------------------------------ properties

_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x24F,
                              exclude_characters="\\"), max_size=16)
_CODE = st.builds(lambda v, s, m: code(v, s, m),
                  st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8),
                  st.sampled_from(["DCM", "99IHERO2008", "SRT", ""]), _TEXT)
_OFFSET = st.one_of(st.just(""), st.integers(-12 * 4, 14 * 4).map(
    lambda q: ("-" if q < 0 else "+") + f"{abs(q) // 4:02d}{abs(q) % 4 * 15:02d}"))


@st.composite
def _dts(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(datetime(1950, 1, 1), datetime(2090, 12, 31)))
    precision = draw(st.sampled_from([4, 6, 8, 10, 12, 14, 16, 21]))
    text = moment.strftime("%Y%m%d%H%M%S.%f")[:precision]
    return text.rstrip(".") + draw(_OFFSET)


@st.composite
def items(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    if draw(st.booleans()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPInstanceUID = draw(st.from_regex(r"2\.25\.[1-9][0-9]{0,20}", fullmatch=True))
    ds.PatientName = draw(_TEXT)
    ds.PatientID = draw(_TEXT)
    ds.PatientBirthDate = draw(st.dates(datetime(1900, 1, 1).date(),
                                        datetime(2030, 1, 1).date())).strftime("%Y%m%d")
    ds.ProcedureStepState = draw(st.sampled_from(ups.STATES))
    ds.WorklistLabel = draw(_TEXT)
    ds.ScheduledProcedureStepStartDateTime = draw(_dts())
    ds.ScheduledStationNameCodeSequence = draw(st.lists(_CODE, max_size=3))
    ds.ScheduledWorkitemCodeSequence = draw(st.lists(_CODE, min_size=1, max_size=2))
    if draw(st.booleans()):
        ds.TransactionUID = CLAIM_UID
    if draw(st.booleans()):
        ds.TimezoneOffsetFromUTC = draw(_OFFSET.filter(bool))
    return ds


def _universal_of(item: Dataset) -> Dataset:
    q = Dataset()
    for elem in item:
        q.add(DataElement(elem.tag, elem.VR, Sequence() if elem.VR == "SQ" else None))
    return q


@settings(max_examples=150, deadline=None)
@given(item=items())
def test_an_item_matches_the_universal_identifier_of_its_own_keys(item: Dataset) -> None:
    assert ups.matches(_universal_of(item), item)
    assert ups.matches(Dataset(), item)


@settings(max_examples=150, deadline=None)
@given(item=items(), which=st.sampled_from(["ScheduledStationNameCodeSequence",
                                              "ScheduledWorkitemCodeSequence"]))
def test_an_item_matches_an_identifier_of_its_own_values(item: Dataset, which: str) -> None:
    assert ups.matches(deepcopy(item), item)
    # one stored code item as the key of its sequence
    codes = getattr(item, which)
    if codes:
        q2 = Dataset()
        setattr(q2, which, [deepcopy(codes[-1])])
        assert ups.matches(q2, item)


@settings(max_examples=150, deadline=None)
@given(item=items(), drop=st.lists(st.integers(0, 20), max_size=6))
def test_dropping_keys_never_loses_a_match(item: Dataset, drop: list[int]) -> None:
    q = deepcopy(item)
    assume(ups.matches(q, item))
    tags = [t for t in list(q.keys()) if t != 0x00080201]  # the offset qualifies keys, is none
    for i in drop:
        if tags and tags[i % len(tags)] in q:
            del q[tags[i % len(tags)]]
    assert ups.matches(q, item)


@settings(max_examples=150, deadline=None)
@given(item=items(), q=items())
def test_response_answers_exactly_the_identifier(item: Dataset, q: Dataset) -> None:
    rsp = ups.response(q, item)
    expected = (set(q.keys()) - {0x00081195, 0x00080005}) | (
        {0x00080005} if "SpecificCharacterSet" in item else set())
    assert set(rsp.keys()) == expected
    assert "TransactionUID" not in rsp


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(datetime(1950, 1, 1), datetime(2090, 1, 1),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                      timezone(timedelta(hours=5, minutes=30))])),
       before=st.timedeltas(timedelta(0), timedelta(days=400)),
       after=st.timedeltas(timedelta(0), timedelta(days=400)),
       key_zone=st.sampled_from([UTC, timezone(timedelta(hours=9)),
                                 timezone(timedelta(hours=-3, minutes=-30))]))
def test_datetime_ranges_around_a_value(moment: datetime, before: timedelta,
                                        after: timedelta, key_zone: timezone) -> None:
    def dt(m: datetime) -> str:
        m = m.astimezone(key_zone)
        offset = m.strftime("%z")
        return m.strftime("%Y%m%d%H%M%S.%f") + offset

    item = workitem(start=dt(moment))
    low, high = moment - before, moment + after
    assert ups.matches(tdd_query(start=f"{dt(low)}-{dt(high)}"), item)
    assert ups.matches(tdd_query(start=f"-{dt(high)}"), item)
    assert ups.matches(tdd_query(start=f"{dt(low)}-"), item)
    later = moment + after + timedelta(microseconds=1)
    assert not ups.matches(tdd_query(start=f"{dt(later)}-"), item)
    assert not ups.matches(tdd_query(start=f"-{dt(low - timedelta(microseconds=1))}"), item)


@settings(max_examples=200, deadline=None)
@given(name=st.text(st.characters(min_codepoint=65, max_codepoint=0x17F,
                                  exclude_characters="\\=^*?"), min_size=1, max_size=20),
       marks=st.lists(st.integers(0, 19), max_size=5), cut=st.integers(0, 20))
def test_person_name_wildcards(name: str, marks: list[int], cut: int) -> None:
    name = name.strip()
    assume(name)
    item = _with(workitem(), PatientName=name)
    chars = list(name)
    for i in marks:
        chars[i % len(chars)] = "?"
    assert ups.matches(_with(Dataset(), PatientName="".join(chars)), item)
    assert ups.matches(_with(Dataset(), PatientName=name[:cut] + "*"), item)
    assert ups.matches(_with(Dataset(), PatientName="*" + name[cut:]), item)
    if name.swapcase().casefold() == name.casefold():  # not so for e.g. the dotless i
        assert ups.matches(_with(Dataset(), PatientName=name.swapcase()), item)
    assert not ups.matches(_with(Dataset(), PatientName=name + "?"), item)
