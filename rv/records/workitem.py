"""The UPS a TDW-II machine pulls: the attribute set of one workitem (PS3.4 Annex CC; PS3.3
C.30 Unified Procedure Step modules) as Verity, the Treatment Management System, makes it
(IHE-RO TDW-II, /work/shared/TDW-II.md "The worklist item"). pydicom only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.sop_class import UnifiedProcedureStepPush

from rv.records.common import clinic_time

UPS_PUSH = UnifiedProcedureStepPush
# IHE-RO TDW-II: the step's workitem code and the coding scheme of its private parameters.
WORKITEM_CODE = ("121726", "DCM", "RT Treatment with Internal Verification")
IHERO = "99IHERO2018"
STATION_SCHEME = "99IHERO2008"  # the TMS's own scheme for machine names (the tdwii samples')
DELIVERY_TYPE_CODE = ("121740", "DCM", "Treatment Delivery Type")
PLAN_LABEL_CODE = ("2018001", IHERO, "Plan Label")
FRACTION_CODE = ("2018002", IHERO, "Current Fraction Number")
FRACTIONS_PLANNED_CODE = ("2018003", IHERO, "Number of Fractions Planned")
BEAM_NUMBER_CODE = ("2018004", IHERO, "Referenced Beam Number")
NO_UNITS = ("1", "UCUM", "no units")
# PS3.16 CID 9300: what Verity says when it cancels a step itself.
DISCONTINUED = ("110513", "DCM", "Discontinued for unspecified reason")


def dt(when: datetime) -> str:
    """A DT value in the clinic's time zone, with its offset."""
    local = clinic_time(when)
    return local.strftime("%Y%m%d%H%M%S") + local.strftime("%z")


def code(value: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def station_code(machine_name: str) -> Dataset:
    """Scheduled (Performed) Station Name Code Sequence item for a treatment machine."""
    return code((machine_name[:16], STATION_SCHEME, machine_name[:64]))


def _text_item(concept: tuple[str, str, str], text: str) -> Dataset:
    item = Dataset()
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([code(concept)])
    item.TextValue = text
    return item


def _numeric_item(concept: tuple[str, str, str], value: int) -> Dataset:
    item = Dataset()
    item.ValueType = "NUMERIC"
    item.ConceptNameCodeSequence = Sequence([code(concept)])
    item.NumericValue = str(value)
    item.MeasurementUnitsCodeSequence = Sequence([code(NO_UNITS)])
    return item


@dataclass(frozen=True)
class InputRef:
    """One input the device retrieves from us (Referenced Instances and Access Macro)."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str


def _input_item(ref: InputRef) -> Dataset:
    item = Dataset()
    item.TypeOfInstances = "DICOM"
    item.StudyInstanceUID = ref.study_uid
    item.SeriesInstanceUID = ref.series_uid
    sop = Dataset()
    sop.ReferencedSOPClassUID = ref.sop_class_uid
    sop.ReferencedSOPInstanceUID = ref.sop_instance_uid
    item.ReferencedSOPSequence = Sequence([sop])
    retrieve = Dataset()
    retrieve.RetrieveAETitle = settings.RV_AE_TITLE[:16]
    item.DICOMRetrievalSequence = Sequence([retrieve])
    return item


@dataclass(frozen=True)
class StepFacts:
    sop_instance_uid: str
    patient: Dataset          # PatientName, PatientID, PatientBirthDate, PatientSex (the plan's)
    study_uid: str
    machine_name: str
    plan_label: str
    fraction_number: int
    fractions_planned: int | None
    delivery_type: str        # TREATMENT or CONTINUATION
    start: datetime
    readiness: str
    inputs: tuple[InputRef, ...]
    replaces_uid: str = ""


def workitem_dataset(facts: StepFacts, *, now: datetime) -> Dataset:
    """The new step, SCHEDULED (PS3.4 Table CC.2.5-3, the N-CREATE column as the TMS fills it)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = UPS_PUSH
    ds.SOPInstanceUID = facts.sop_instance_uid
    # Unified Procedure Step Scheduled Procedure Information Module
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ScheduledProcedureStepModificationDateTime = dt(now)
    label = f"Fraction {facts.fraction_number} of {facts.plan_label}"
    if facts.delivery_type == "CONTINUATION":
        label += " (continuation)"
    ds.ProcedureStepLabel = label[:64]
    ds.WorklistLabel = f"{facts.machine_name} worklist"[:64]
    params = [_text_item(DELIVERY_TYPE_CODE, facts.delivery_type),
              _text_item(PLAN_LABEL_CODE, facts.plan_label),
              _numeric_item(FRACTION_CODE, facts.fraction_number)]
    if facts.fractions_planned:
        params.append(_numeric_item(FRACTIONS_PLANNED_CODE, facts.fractions_planned))
    ds.ScheduledProcessingParametersSequence = Sequence(params)
    ds.ScheduledStationNameCodeSequence = Sequence([station_code(facts.machine_name)])
    ds.ScheduledStationClassCodeSequence = Sequence()
    ds.ScheduledStationGeographicLocationCodeSequence = Sequence()
    ds.ScheduledHumanPerformersSequence = Sequence()
    ds.ScheduledProcedureStepStartDateTime = dt(facts.start)
    ds.ScheduledWorkitemCodeSequence = Sequence([code(WORKITEM_CODE)])
    ds.CommentsOnTheScheduledProcedureStep = None
    ds.InputReadinessState = facts.readiness
    ds.InputInformationSequence = Sequence([_input_item(i) for i in facts.inputs])
    ds.StudyInstanceUID = facts.study_uid
    # Unified Procedure Step Relationship Module: the patient, as the plan names them
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, key, facts.patient.get(key))
    ds.IssuerOfPatientID = None
    ds.AdmissionID = None
    ds.ReferencedRequestSequence = Sequence()
    if facts.replaces_uid:
        replaced = Dataset()
        replaced.ReferencedSOPClassUID = UPS_PUSH
        replaced.ReferencedSOPInstanceUID = facts.replaces_uid
        ds.ReplacedProcedureStepSequence = Sequence([replaced])
    # Unified Procedure Step Progress Information and Performed Procedure Information
    ds.ProcedureStepState = "SCHEDULED"
    ds.ProcedureStepProgressInformationSequence = Sequence()
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence()
    return ds


def cancellation_progress(*, when: datetime, reason: str) -> Dataset:
    """The Progress Information item of a step Verity cancels itself (PS3.4 Table CC.2.5-3:
    Procedure Step Cancellation DateTime, Reason For Cancellation, Discontinuation Reason)."""
    item = Dataset()
    item.ProcedureStepCancellationDateTime = dt(when)
    item.ReasonForCancellation = reason[:1024]
    item.ProcedureStepDiscontinuationReasonCodeSequence = Sequence([code(DISCONTINUED)])
    return item
