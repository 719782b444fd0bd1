"""The pure UPS rules of rv.ups: the state table (PS3.4 Table CC.1.1-2, every row by every
column), Request Cancel, the N-SET lock and N-SET itself (refusals, atomicity, sequences
replaced whole). The final state, progress and outputs: test_ups_content.py; matching:
test_ups_matching.py."""

from __future__ import annotations

import io
from copy import deepcopy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread, dcmwrite
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from rv import ups
from tests.rv.ups_items import CLAIM_UID, code, progress_item, tag_of, workitem

# Malformed DT values are the point of some tests; pydicom warns when they are set.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")

S, P, X, C = ups.SCHEDULED, ups.IN_PROGRESS, ups.CANCELED, ups.COMPLETED
OTHER_UID = "2.25.999"

# ------------------------------------------------------------------ state table

# Rows of Table CC.1.1-2 as (requested state, which Transaction UID the request carries);
# columns: current state (None = no such UPS). "met"/"unmet": do it if the final state
# requirements are met, else C304. Written out independently of the implementation.
_ROWS: dict[tuple[str, str], dict[str | None, object]] = {
    (P, "new"): {None: 0xC307, S: ("do", P), P: 0xC302, X: 0xC300, C: 0xC300},
    (S, "right"): {None: 0xC307, S: 0xC303, P: 0xC303, X: 0xC303, C: 0xC303},
    (S, "missing"): {None: 0xC307, S: 0xC303, P: 0xC303, X: 0xC303, C: 0xC303},
    (C, "right"): {None: 0xC307, S: 0xC310, P: ("final", C), X: 0xC300, C: 0xB306},
    (X, "right"): {None: 0xC307, S: 0xC310, P: ("final", X), X: 0xB304, C: 0xC300},
    (C, "wrong"): {None: 0xC307, S: 0xC310, P: 0xC301, X: 0xC300, C: 0xC300},
    (X, "wrong"): {None: 0xC307, S: 0xC310, P: 0xC301, X: 0xC300, C: 0xC300},
    (C, "missing"): {None: 0xC307, S: 0xC310, P: 0xC301, X: 0xC300, C: 0xC300},
    (X, "missing"): {None: 0xC307, S: 0xC310, P: 0xC301, X: 0xC300, C: 0xC300},
}
_CELLS = [(requested, uid, current) for (requested, uid), row in _ROWS.items()
          for current in row]


def _uids(kind: str, current: str | None) -> tuple[str, str]:
    """(given, recorded) Transaction UIDs for a row's kind in a column's state."""
    recorded = "" if current in (None, S) else CLAIM_UID
    given = {"new": CLAIM_UID, "right": recorded or CLAIM_UID, "wrong": OTHER_UID,
             "missing": ""}[kind]
    if kind == "right" and current == S:
        recorded = CLAIM_UID  # even a "matching" UID cannot complete a SCHEDULED UPS
    return given, recorded


@pytest.mark.parametrize(("requested", "kind", "current"), _CELLS)
@pytest.mark.parametrize("met", [True, False])
def test_state_table_every_row_and_column(requested: str, kind: str, current: str | None,
                                          met: bool) -> None:
    given, recorded = _uids(kind, current)
    got = ups.change_state(current=current, requested=requested, transaction_uid=given,
                           recorded_uid=recorded, final_state_met=met)
    expected = _ROWS[(requested, kind)][current]
    if expected == ("do", P):
        assert (got.status, got.new_state) == (0x0000, P)
    elif isinstance(expected, tuple):
        assert (got.status, got.new_state) == ((0x0000, expected[1]) if met else (0xC304, None))
    else:
        assert (got.status, got.new_state) == (expected, None)
    assert got.comment


@pytest.mark.parametrize("uid", ["", "   ", "not-a-uid", "1..2", "1.2.", "1." + "2" * 70])
def test_claim_needs_a_valid_transaction_uid(uid: str) -> None:
    got = ups.change_state(current=S, requested=P, transaction_uid=uid, recorded_uid="",
                           final_state_met=False)
    assert (got.status, got.new_state) == (0xC301, None)
    assert "Transaction UID" in got.comment


@pytest.mark.parametrize("current", [S, P, X, C])
def test_requested_value_that_is_no_state(current: str) -> None:
    got = ups.change_state(current=current, requested="DONE", transaction_uid=CLAIM_UID,
                           recorded_uid=CLAIM_UID, final_state_met=True)
    assert (got.status, got.new_state) == (0x0115, None)
    assert "DONE" in got.comment


@pytest.mark.parametrize("requested", [S, P, X, C])
def test_unknown_current_state_is_a_processing_failure(requested: str) -> None:
    got = ups.change_state(current="LIMBO", requested=requested, transaction_uid=CLAIM_UID,
                           recorded_uid=CLAIM_UID, final_state_met=True)
    assert got.status == 0x0110 and got.new_state is None and "LIMBO" in got.comment


def test_claim_with_a_leading_zero_component_is_accepted() -> None:
    got = ups.change_state(current=S, requested=P, transaction_uid="2.25.0123",
                           recorded_uid="", final_state_met=False)
    assert (got.status, got.new_state) == (0x0000, P)


@pytest.mark.parametrize(("current", "reachable", "expected"), [
    (None, True, (0xC307, None)), (None, False, (0xC307, None)),
    (S, True, (0x0000, X)), (S, False, (0x0000, X)),
    (P, True, (0x0000, None)), (P, False, (0xC312, None)),
    (X, True, (0xB304, None)), (X, False, (0xB304, None)),
    (C, True, (0xC311, None)), (C, False, (0xC311, None)),
])
def test_request_cancel(current: str | None, reachable: bool,
                        expected: tuple[int, str | None]) -> None:
    got = ups.request_cancel(current=current, performer_reachable=reachable)
    assert (got.status, got.new_state) == expected and got.comment


@pytest.mark.parametrize(("state", "given", "recorded", "status"), [
    (None, "", "", 0xC307),
    (S, "", "", 0x0000), (S, CLAIM_UID, "", 0xC310), (S, CLAIM_UID, CLAIM_UID, 0xC310),
    (P, CLAIM_UID, CLAIM_UID, 0x0000), (P, "", CLAIM_UID, 0xC301),
    (P, OTHER_UID, CLAIM_UID, 0xC301), (P, CLAIM_UID, "", 0xC301),
    (X, CLAIM_UID, CLAIM_UID, 0xC300), (C, "", "", 0xC300), ("LIMBO", "", "", 0x0110),
])
def test_nset_gate(state: str | None, given: str, recorded: str, status: int) -> None:
    assert ups.nset_gate(state=state, transaction_uid=given, recorded_uid=recorded).status \
        == status


def test_every_status_used_has_its_ps34_meaning() -> None:
    for code_ in (0xB300, 0xB301, 0xB304, 0xB305, 0xB306, 0xC300, 0xC301, 0xC302, 0xC303,
                  0xC304, 0xC307, 0xC308, 0xC309, 0xC310, 0xC311, 0xC312, 0xC313, 0xC314,
                  0xC315, 0xFE00, 0xFF00, 0xFF01, 0x0105, 0x0106, 0x0110, 0x0115, 0xA900):
        assert ups.STATUS_MEANINGS[code_]
    assert ups.STATUS_MEANINGS[0xC301] == "The correct Transaction UID was not provided"


# --------------------------------------------------------------------------- N-SET


def _mod(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_nset_scheduled_without_a_transaction_uid() -> None:
    item = workitem()
    before = deepcopy(item)
    got = ups.nset_apply(item=item, modification=_mod(WorklistLabel="HALCYON2 worklist",
                                                      InputReadinessState="INCOMPLETE"),
                         state=S)
    assert got.WorklistLabel == "HALCYON2 worklist" and got.InputReadinessState == "INCOMPLETE"
    assert str(got.PatientName) == "Müller^Anna"  # non-ASCII text survives untouched
    assert item == before


def test_nset_in_progress_with_its_claim_and_the_lock_is_not_stored() -> None:
    item = workitem(state=P, transaction_uid=CLAIM_UID)
    got = ups.nset_apply(item=item, state=P, modification=_mod(
        TransactionUID=CLAIM_UID,
        ProcedureStepProgressInformationSequence=[progress_item("50", "Beam 2")]))
    assert got.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress == 50
    assert got.TransactionUID == CLAIM_UID


def test_nset_recorded_uid_given_apart_from_the_item() -> None:
    item = workitem(state=P)  # the service keeps the claim in its own column
    got = ups.nset_apply(item=item, state=P, recorded_uid=CLAIM_UID,
                         modification=_mod(TransactionUID=CLAIM_UID, WorklistLabel="x"))
    assert got.WorklistLabel == "x" and "TransactionUID" not in got


@pytest.mark.parametrize(("state", "given", "status"), [
    (S, CLAIM_UID, 0xC310), (P, None, 0xC301), (P, OTHER_UID, 0xC301), (P, "", 0xC301),
    (X, CLAIM_UID, 0xC300), (C, CLAIM_UID, 0xC300), (C, None, 0xC300),
])
def test_nset_lock_refusals(state: str, given: str | None, status: int) -> None:
    item = workitem(state=state, transaction_uid=None if state == S else CLAIM_UID)
    mod = _mod(WorklistLabel="x")
    if given is not None:
        mod.TransactionUID = given
    with pytest.raises(ups.NSetRefused) as refused:
        ups.nset_apply(item=item, modification=mod, state=state)
    assert refused.value.status == status and refused.value.comment
    assert refused.value.tags == (0x00081195,)


def _element(tag: int) -> DataElement:
    vr = str(dictionary_VR(tag)).split(" or ")[0]
    value: object = {"SQ": Sequence([code("X", "99LOCAL", "x")]), "UI": "2.25.7",
                     "DA": "20000101", "CS": "O", "PN": "Other^Patient"}.get(vr, "other")
    return DataElement(tag, vr, value)


@pytest.mark.parametrize("tag", sorted(ups.NSET_NOT_ALLOWED[ups.IN_PROGRESS]),
                         ids=lambda t: keyword_for_tag(t))
@pytest.mark.parametrize("state", [S, P])
def test_nset_refuses_each_attribute_it_may_not_set(tag: int, state: str) -> None:
    item = workitem(state=state, transaction_uid=None if state == S else CLAIM_UID)
    before = deepcopy(item)
    mod = _mod(WorklistLabel="changed")
    if state == P:
        mod.TransactionUID = CLAIM_UID
    mod.add(_element(tag))
    with pytest.raises(ups.NSetRefused) as refused:
        ups.nset_apply(item=item, modification=mod, state=state)
    assert refused.value.status == 0x0105
    assert refused.value.tags == (tag,)
    assert keyword_for_tag(tag) in refused.value.comment
    assert item == before  # nothing applied, not even the allowed WorklistLabel


def test_nset_refusal_names_every_forbidden_attribute() -> None:
    mod = _mod(ProcedureStepState=C, SOPInstanceUID="2.25.8", PatientName="X^Y",
               ProcedureStepLabel="fine")
    with pytest.raises(ups.NSetRefused) as refused:
        ups.nset_apply(item=workitem(), modification=mod, state=S)
    assert refused.value.tags == (0x00080018, 0x00100010, 0x00741000)
    for keyword in ("ProcedureStepState", "SOPInstanceUID", "PatientName"):
        assert keyword in refused.value.comment


@pytest.mark.parametrize(("keyword", "value"), [("InputReadinessState", "MAYBE"),
                                                ("ScheduledProcedureStepPriority", "URGENT")])
def test_nset_refuses_values_outside_the_enumeration(keyword: str, value: str) -> None:
    with pytest.raises(ups.NSetRefused) as refused:
        ups.nset_apply(item=workitem(), modification=_mod(**{keyword: value}), state=S)
    assert refused.value.status == 0x0106 and value in refused.value.comment


def test_nset_sequences_are_replaced_whole() -> None:
    item = workitem(state=P, transaction_uid=CLAIM_UID)
    contact = Dataset()
    contact.ContactURI = "tel:1234"
    item.ProcedureStepProgressInformationSequence = [
        progress_item("20", "Beam 1", ProcedureStepCommunicationsURISequence=[contact])]
    second = deepcopy(item.InputInformationSequence[0])
    second.StudyInstanceUID = "2.25.77"
    item.InputInformationSequence.append(second)
    got = ups.nset_apply(item=item, state=P, modification=_mod(
        TransactionUID=CLAIM_UID,
        ProcedureStepProgressInformationSequence=[progress_item("60")],
        InputInformationSequence=[deepcopy(second)]))
    info = got.ProcedureStepProgressInformationSequence
    assert len(info) == 1 and set(info[0].keys()) == {0x00741004}
    assert [i.StudyInstanceUID for i in got.InputInformationSequence] == ["2.25.77"]
    assert len(item.InputInformationSequence) == 2  # the stored one untouched


def test_nset_zero_length_values_empty_attributes() -> None:
    got = ups.nset_apply(item=workitem(), state=S, modification=_mod(
        InputInformationSequence=Sequence(), ProcedureStepLabel=""))
    assert got.InputInformationSequence == Sequence() and not got.ProcedureStepLabel


def test_nset_strips_command_elements_instead_of_refusing() -> None:
    mod = _mod(WorklistLabel="x")
    mod.add_new(0x00000002, "UI", ups_push := "1.2.840.10008.5.1.4.34.6.1")
    mod.add_new(0x00000100, "US", 0x0120)
    mod.add_new(0x00001001, "UI", "2.25.42")
    got = ups.nset_apply(item=workitem(), modification=mod, state=S)
    assert got.WorklistLabel == "x" and not [t for t in list(got.keys()) if t.group == 0]
    assert mod[0x00000002].value == ups_push  # the caller's data set is left alone
    assert ups.strip_command_elements(mod) == ["AffectedSOPClassUID", "CommandField",
                                               "RequestedSOPInstanceUID"]
    assert list(mod.keys()) == [0x00741202]


def _read_back(ds: Dataset) -> Dataset:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=False)
    return dcmread(io.BytesIO(buffer.getvalue()), force=True)


def test_nset_text_of_another_character_set_stays_readable() -> None:
    item = workitem()
    item.SpecificCharacterSet = "ISO_IR 100"
    item = _read_back(item)  # stored values still raw bytes in Latin-1
    mod = _read_back(_mod(SpecificCharacterSet="ISO_IR 192", ProcedureStepLabel="Ωmega Fx 3"))
    got = ups.nset_apply(item=item, modification=mod, state=S)
    assert got.SpecificCharacterSet == "ISO_IR 192"
    again = _read_back(got)
    assert str(again.PatientName) == "Müller^Anna"
    assert again.ProcedureStepLabel == "Ωmega Fx 3"


def test_nset_same_character_set_is_kept() -> None:
    got = ups.nset_apply(item=workitem(), state=S, modification=_mod(
        SpecificCharacterSet="ISO_IR 192", ProcedureStepLabel="ok"))
    assert got.SpecificCharacterSet == "ISO_IR 192"
    plain = workitem()
    del plain.SpecificCharacterSet
    assert "SpecificCharacterSet" not in ups.nset_apply(
        item=plain, state=S, modification=_mod(ProcedureStepLabel="ok"))


_ALLOWED = {"WorklistLabel": "w", "ProcedureStepLabel": "l", "InputReadinessState": "READY",
            "ScheduledProcedureStepPriority": "HIGH",
            "ScheduledProcedureStepStartDateTime": "20240116080000"}
_FORBIDDEN = [keyword_for_tag(t) for t in sorted(ups.NSET_NOT_ALLOWED[ups.SCHEDULED])]


@settings(max_examples=120, deadline=None)
@given(allowed=st.lists(st.sampled_from(sorted(_ALLOWED)), unique=True),
       forbidden=st.lists(st.sampled_from(_FORBIDDEN), unique=True, max_size=3),
       state=st.sampled_from([S, P, X, C]), lock=st.sampled_from(["right", "wrong", "none"]))
def test_nset_is_all_or_nothing(allowed: list[str], forbidden: list[str], state: str,
                                lock: str) -> None:
    item = workitem(state=state, transaction_uid=None if state == S else CLAIM_UID)
    before = deepcopy(item)
    mod = _mod(**{k: _ALLOWED[k] for k in allowed})
    for keyword in forbidden:
        mod.add(_element(tag_of(keyword)))
    if lock != "none":
        mod.TransactionUID = CLAIM_UID if lock == "right" else OTHER_UID
    lock_ok = (state == S and lock == "none") or (state == P and lock == "right")
    try:
        got = ups.nset_apply(item=item, modification=mod, state=state)
    except ups.NSetRefused as refused:
        assert not lock_ok or forbidden
        assert refused.status in (0xC300, 0xC301, 0xC310, 0x0105)
    else:
        assert lock_ok and not forbidden
        for keyword in allowed:
            assert getattr(got, keyword) == _ALLOWED[keyword]
    assert item == before
