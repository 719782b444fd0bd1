"""What a UPS says (rv.ups, from rv.ups_content): the final state requirements of PS3.4
Table CC.2.5-3 and their lenient supply, the RO-62 progress (percent, description, beam),
the outputs reported in RO-64 and the discontinuation of a canceled step."""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from rv import ups
from tests.rv.ups_items import CLAIM_UID, code, content_item, progress_item, tag_of, workitem

# Malformed DT values are the point of some tests; pydicom warns when they are set.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")

S, P, X, C = ups.SCHEDULED, ups.IN_PROGRESS, ups.CANCELED, ups.COMPLETED


# ---------------------------------------------------------------------- final state

_STATION = code("TRUEBEAM1", "99IHERO2008", "TRUEBEAM1")
_WORKITEM = code("121726", "DCM", "RT Treatment with Internal Verification")
_START = datetime(2024, 1, 15, 9, 31, 5, tzinfo=timezone(timedelta(hours=1)))
_END = datetime(2024, 1, 15, 9, 44, 0, 250000, tzinfo=timezone(timedelta(hours=1)))


def _performed(**overrides: object) -> Dataset:
    performed = Dataset()
    performed.PerformedStationNameCodeSequence = [deepcopy(_STATION)]
    performed.PerformedProcedureStepStartDateTime = "20240115093105"
    performed.PerformedProcedureStepEndDateTime = "20240115094400"
    performed.PerformedWorkitemCodeSequence = [deepcopy(_WORKITEM)]
    performed.OutputInformationSequence = Sequence()
    for keyword, value in overrides.items():
        if value is None:
            delattr(performed, keyword)
        else:
            setattr(performed, keyword, value)
    return performed


def _completed_item(**overrides: object) -> Dataset:
    item = workitem(state=P, transaction_uid=CLAIM_UID)
    item.UnifiedProcedureStepPerformedProcedureSequence = [_performed(**overrides)]
    return item


def test_completed_requirements_met() -> None:
    assert ups.final_state_problems(_completed_item(), C) == []


def test_completed_requirements_of_an_item_without_any() -> None:
    problems = ups.final_state_problems(workitem(state=P), C)
    for keyword in ("UnifiedProcedureStepPerformedProcedureSequence",
                    "PerformedStationNameCodeSequence", "PerformedWorkitemCodeSequence",
                    "PerformedProcedureStepStartDateTime", "PerformedProcedureStepEndDateTime",
                    "OutputInformationSequence"):
        assert any(p.startswith(keyword + " (") for p in problems), keyword
    assert len(problems) == 6


@pytest.mark.parametrize(("keyword", "value"), [
    ("PerformedStationNameCodeSequence", None),
    ("PerformedStationNameCodeSequence", Sequence()),
    ("PerformedStationNameCodeSequence", [code("TRUEBEAM1", "")]),
    ("PerformedWorkitemCodeSequence", [code("", "DCM", "meaning only")]),
    ("PerformedProcedureStepStartDateTime", None),
    ("PerformedProcedureStepEndDateTime", "yesterday"),
    ("OutputInformationSequence", None),
])
def test_completed_requirement_missing(keyword: str, value: object) -> None:
    problems = ups.final_state_problems(_completed_item(**{keyword: value}), C)
    assert len(problems) == 1 and problems[0].startswith(keyword)


def test_completed_code_without_meaning_is_enough() -> None:
    item = _completed_item(PerformedStationNameCodeSequence=[code("TRUEBEAM1", "99IHERO2008")])
    assert ups.final_state_problems(item, C) == []


def _canceled_item(**progress: object) -> Dataset:
    item = workitem(state=P, transaction_uid=CLAIM_UID)
    item.ProcedureStepProgressInformationSequence = [progress_item("40", **progress)]
    return item


def test_canceled_requirements() -> None:
    assert len(ups.final_state_problems(workitem(state=P), X)) == 2
    assert len(ups.final_state_problems(_canceled_item(), X)) == 2
    met = _canceled_item(ProcedureStepCancellationDateTime="20240115094400",
                         ProcedureStepDiscontinuationReasonCodeSequence=[
                             code("110514", "DCM", "Incorrect worklist entry selected")])
    assert ups.final_state_problems(met, X) == []
    # COMPLETED's requirements are not CANCELED's
    assert ups.final_state_problems(_completed_item(), X) != []


def test_final_state_of_a_non_final_state_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="SCHEDULED"):
        ups.final_state_problems(workitem(), S)


def _supply(item: Dataset, target: str) -> tuple[Dataset, list[str]]:
    return ups.final_state_supply(item, target, station=_STATION, start=_START, end=_END,
                                  workitem_code=_WORKITEM)


def test_supply_completed_from_nothing() -> None:
    item = workitem(state=P, transaction_uid=CLAIM_UID)
    before = deepcopy(item)
    got, supplied = _supply(item, C)
    assert supplied == ["UnifiedProcedureStepPerformedProcedureSequence",
                        "PerformedStationNameCodeSequence",
                        "PerformedProcedureStepStartDateTime",
                        "PerformedProcedureStepEndDateTime", "PerformedWorkitemCodeSequence",
                        "OutputInformationSequence"]
    assert ups.final_state_problems(got, C) == []
    performed = got.UnifiedProcedureStepPerformedProcedureSequence[0]
    assert performed.PerformedProcedureStepStartDateTime == "20240115093105+0100"
    assert performed.PerformedProcedureStepEndDateTime == "20240115094400.250000+0100"
    assert performed.PerformedStationNameCodeSequence[0].CodeValue == "TRUEBEAM1"
    assert performed.OutputInformationSequence == Sequence()
    assert item == before


def test_supply_completed_keeps_what_the_device_sent() -> None:
    item = _completed_item(PerformedProcedureStepEndDateTime=None,
                           OutputInformationSequence=None,
                           PerformedProcedureStepStartDateTime="bad")
    got, supplied = _supply(item, C)
    assert supplied == ["PerformedProcedureStepStartDateTime",
                        "PerformedProcedureStepEndDateTime", "OutputInformationSequence"]
    performed = got.UnifiedProcedureStepPerformedProcedureSequence[0]
    assert performed.PerformedStationNameCodeSequence[0].CodeMeaning == "TRUEBEAM1"
    assert ups.final_state_problems(got, C) == []


def test_supply_canceled() -> None:
    item = _canceled_item()
    got, supplied = _supply(item, X)
    assert supplied == ["ProcedureStepCancellationDateTime",
                        "ProcedureStepDiscontinuationReasonCodeSequence"]
    info = got.ProcedureStepProgressInformationSequence[0]
    assert info.ProcedureStepProgress == 40  # kept
    assert info.ProcedureStepCancellationDateTime == "20240115094400.250000+0100"
    reason = info.ProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (reason.CodeValue, reason.CodingSchemeDesignator, reason.CodeMeaning) == (
        "110513", "DCM", "Discontinued for unspecified reason")
    assert ups.final_state_problems(got, X) == []
    got2, supplied2 = _supply(workitem(state=P), X)
    assert supplied2[0] == "ProcedureStepProgressInformationSequence"
    assert ups.final_state_problems(got2, X) == []


@pytest.mark.parametrize("target", [C, X])
def test_supply_when_nothing_is_missing(target: str) -> None:
    reason = [code("110513", "DCM", "Discontinued for unspecified reason")]
    item = _completed_item() if target == C else _canceled_item(
        ProcedureStepCancellationDateTime="20240115",
        ProcedureStepDiscontinuationReasonCodeSequence=reason)
    got, supplied = _supply(item, target)
    assert supplied == [] and got == item


def test_supplied_naive_times_have_no_offset() -> None:
    got, _ = ups.final_state_supply(workitem(state=P), C, station=_STATION,
                                    start=datetime(2024, 1, 15, 9, 0),
                                    end=datetime(2024, 1, 15, 9, 5), workitem_code=_WORKITEM)
    performed = got.UnifiedProcedureStepPerformedProcedureSequence[0]
    assert performed.PerformedProcedureStepStartDateTime == "20240115090000"


# -------------------------------------------------------------------------- progress

_BEAM = ("2018004", "99IHERO2018", "Referenced Beam Number")


def _with_progress(info: Dataset) -> Dataset:
    item = workitem(state=P)
    item.ProcedureStepProgressInformationSequence = [info]
    return item


def test_progress_with_the_tdwii_beam_parameter() -> None:
    info = progress_item("37.5", "Delivering",
                          ProcedureStepProgressParametersSequence=[
                              content_item(("121740", "DCM", "Other"), "NUMERIC",
                                           NumericValue="9"),
                              content_item(_BEAM, "NUMERIC", NumericValue="3")])
    assert ups.progress(_with_progress(info)) == ups.Progress(37.5, "Delivering", 3)


def test_progress_parameter_wins_over_the_description() -> None:
    info = progress_item("10", "Beam 1", ProcedureStepProgressParametersSequence=[
        content_item(_BEAM, "NUMERIC", NumericValue="2")])
    assert ups.progress(_with_progress(info)).beam_number == 2


def test_progress_parameter_in_a_measured_value_sequence() -> None:
    measured = Dataset()
    measured.NumericValue = "4"
    info = progress_item("10", ProcedureStepProgressParametersSequence=[
        content_item(_BEAM, "NUMERIC", MeasuredValueSequence=[measured])])
    assert ups.progress(_with_progress(info)).beam_number == 4


@pytest.mark.parametrize(("description", "beam"), [
    ("Beam 2", 2), ("beam: 3", 3), ("Delivering BEAM #4 of 6", 4), ("Beam number 12", 12),
    ("beam=5", 5), ("Treating", None), ("Beamline 7", None), ("", None)])
def test_progress_beam_in_the_description(description: str, beam: int | None) -> None:
    assert ups.progress(_with_progress(progress_item("50", description))).beam_number == beam


def _raw(**values: tuple[str, bytes]) -> Dataset:
    """A data set holding undecoded values, as they come off the network."""
    ds = Dataset()
    for keyword, (vr, value) in values.items():
        tag = Tag(tag_of(keyword))
        ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


@pytest.mark.parametrize("info", [
    _raw(ProcedureStepProgress=("DS", b"not a number"),
         ProcedureStepProgressDescription=("ST", b"Beam x")),
    _raw(ProcedureStepProgress=("DS", b"NaN ")),
    _raw(ProcedureStepProgress=("DS", b"50\\60")),
    Dataset(),
])
def test_progress_tolerates_garbage(info: Dataset) -> None:
    got = ups.progress(_with_progress(info))
    assert got.percent is None and got.beam_number is None


def test_progress_of_an_item_without_progress() -> None:
    assert ups.progress(Dataset()) == ups.Progress(None, "", None)
    assert ups.progress(workitem()) == ups.Progress(None, "", None)


def test_progress_with_a_bad_parameter_item() -> None:
    bad = Dataset()
    bad.ConceptNameCodeSequence = [code("2018004", "99IHERO2018")]
    bad.NumericValue = "2.5"
    info = progress_item("5", "Beam 6", ProcedureStepProgressParametersSequence=[bad])
    assert ups.progress(_with_progress(info)).beam_number == 6


@pytest.mark.filterwarnings("ignore:The value length", "ignore:Failed to decode",
                            "ignore:Found unknown escape")
@settings(max_examples=150, deadline=None)
@given(percent=st.text(max_size=8), description=st.text(max_size=40),
       value=st.text(max_size=8))
def test_progress_never_raises(percent: str, description: str, value: str) -> None:
    info = _raw(ProcedureStepProgress=("DS", percent.encode("utf-8", "replace")),
                ProcedureStepProgressDescription=("ST", description.encode("utf-8", "replace")))
    info.ProcedureStepProgressParametersSequence = [
        content_item(_BEAM, "NUMERIC", TextValue=value)]
    got = ups.progress(_with_progress(info))
    assert isinstance(got.description, str)


# ----------------------------------------------------------- outputs, discontinuation


def _ref(cls: str, inst: str) -> Dataset:
    ref = Dataset()
    if cls:
        ref.ReferencedSOPClassUID = cls
    if inst:
        ref.ReferencedSOPInstanceUID = inst
    return ref


def test_output_references() -> None:
    record = "1.2.840.10008.5.1.4.1.1.481.4"
    image = "1.2.840.10008.5.1.4.1.1.481.1"
    out1, out2 = Dataset(), Dataset()
    out1.ReferencedSOPSequence = [_ref(record, "2.25.1"), _ref(image, "2.25.2"),
                                  _ref(record, "")]
    out2.ReferencedSOPSequence = [_ref(record, "2.25.1"), _ref(record, "2.25.3")]
    item = _completed_item(OutputInformationSequence=[out1, out2])
    assert ups.output_references(item) == [(record, "2.25.1"), (image, "2.25.2"),
                                           (record, "2.25.3")]
    assert ups.output_references(workitem()) == []


@pytest.mark.parametrize(("progress", "expected"), [
    ({"ProcedureStepCancellationDateTime": "20240115094400",
      "ProcedureStepDiscontinuationReasonCodeSequence": [
          code("110513", "DCM", "Discontinued for unspecified reason")]},
     ("Discontinued for unspecified reason", "20240115094400")),
    ({"ProcedureStepDiscontinuationReasonCodeSequence": [code("110514", "DCM")]},
     ("110514", "")),
    ({"ReasonForCancellation": "Patient unwell"}, ("Patient unwell", "")),
    ({}, ("", "")),
])
def test_discontinuation(progress: dict[str, object], expected: tuple[str, str]) -> None:
    assert ups.discontinuation(_canceled_item(**progress)) == expected
    assert ups.discontinuation(workitem()) == ("", "")
