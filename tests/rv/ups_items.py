"""Workitems and queries for the UPS rule tests, shaped like IHE-RO TDW-II's (RO-58)."""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
CLAIM_UID = "2.25.1234567890"


def code(value: str, scheme: str | None, meaning: str | None = None) -> Dataset:
    """A code item; None leaves an attribute out, "" sends it zero-length."""
    item = Dataset()
    item.CodeValue = value
    if scheme is not None:
        item.CodingSchemeDesignator = scheme
    if meaning is not None:
        item.CodeMeaning = meaning
    return item


def content_item(concept: tuple[str, str, str], value_type: str, **values: object) -> Dataset:
    item = Dataset()
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [code(*concept)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def workitem(*, state: str = "SCHEDULED", station: str = "TRUEBEAM1",
             start: str = "20240115093000", transaction_uid: str | None = None) -> Dataset:
    """A fraction's worklist item as Verity schedules it (TDW-II.md "The worklist item")."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = UPS_PUSH
    ds.SOPInstanceUID = "2.25.42"
    ds.PatientName = "Müller^Anna"
    ds.PatientID = "RV-0001"
    ds.PatientBirthDate = "19600214"
    ds.PatientSex = "F"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = "Fraction 3 of PROST_1"
    ds.WorklistLabel = "TRUEBEAM1 worklist"
    ds.ScheduledStationNameCodeSequence = [code(station, "99IHERO2008", station)]
    ds.ScheduledProcedureStepStartDateTime = start
    ds.ScheduledWorkitemCodeSequence = [
        code("121726", "DCM", "RT Treatment with Internal Verification")]
    ds.InputReadinessState = "READY"
    plan_ref = Dataset()
    plan_ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
    plan_ref.ReferencedSOPInstanceUID = "2.25.100"
    retrieval = Dataset()
    retrieval.RetrieveAETitle = "VERITY"
    plan_input = Dataset()
    plan_input.TypeOfInstances = "DICOM"
    plan_input.StudyInstanceUID = "2.25.10"
    plan_input.SeriesInstanceUID = "2.25.11"
    plan_input.ReferencedSOPSequence = [plan_ref]
    plan_input.DICOMRetrievalSequence = [retrieval]
    ds.InputInformationSequence = [plan_input]
    ds.ScheduledProcessingParametersSequence = [
        content_item(("121740", "DCM", "Treatment Delivery Type"), "TEXT",
                     TextValue="TREATMENT"),
        content_item(("2018001", "99IHERO2018", "Plan Label"), "TEXT", TextValue="PROST_1"),
        content_item(("2018002", "99IHERO2018", "Current Fraction Number"), "NUMERIC",
                     NumericValue="3"),
    ]
    ds.StudyInstanceUID = "2.25.10"
    ds.ProcedureStepState = state
    ds.ProcedureStepProgressInformationSequence = Sequence()
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence()
    if transaction_uid is not None:
        ds.TransactionUID = transaction_uid
    return ds


def tdd_query(*, station: str = "TRUEBEAM1", state: str = "SCHEDULED",
              start: str = "") -> Dataset:
    """The RO-58 query a real TDD sends: workitem code value + scheme with an empty meaning,
    station code value with an empty scheme, the state and the start DateTime; it asks for
    the SOP Instance UID, the patient, the inputs, the processing parameters and the label."""
    q = Dataset()
    q.ScheduledWorkitemCodeSequence = [code("121726", "DCM", "")]
    q.ScheduledStationNameCodeSequence = [code(station, "")]
    q.ProcedureStepState = state
    q.ScheduledProcedureStepStartDateTime = start
    q.SOPInstanceUID = ""
    q.PatientName = ""
    q.PatientID = ""
    q.InputInformationSequence = Sequence()
    q.ScheduledProcessingParametersSequence = Sequence()
    q.WorklistLabel = ""
    return q


def progress_item(percent: str, description: str = "", **more: object) -> Dataset:
    info = Dataset()
    info.ProcedureStepProgress = percent
    if description:
        info.ProcedureStepProgressDescription = description
    for keyword, value in more.items():
        setattr(info, keyword, value)
    return info


def tag_of(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)
