"""The clinical models of rv, one small module per subject (DESIGN.md: no god files)."""

from rv.models.audit import AuditEvent
from rv.models.banner import PatientAlert, PatientPhoto, SetupNote
from rv.models.clearance import CouchReference, MachineGroup, SetupClearance
from rv.models.device import DeviceRecord, RTImageLink
from rv.models.hours import MachineHours
from rv.models.machine import ToleranceTable, TreatmentMachine
from rv.models.patient import Course, Patient
from rv.models.plan import (
    ApplicationSetup,
    Beam,
    BrachyChannel,
    BrachySource,
    DoseReference,
    FractionGroup,
    FractionGroupBeam,
    FractionGroupBrachySetup,
    Plan,
)
from rv.models.prescription import Prescription, PrescriptionPlan, PrescriptionReference
from rv.models.task import Task
from rv.models.treatment import (
    Appointment,
    BeamDelivery,
    ChannelDelivery,
    ContentOrigin,
    Override,
    Session,
    SessionDose,
    TerminationStatus,
    VerificationStatus,
)
from rv.models.ups_event import UpsEvent, UpsSubscription
from rv.models.workitem import Workitem

__all__ = [
    "Appointment", "BeamDelivery", "ChannelDelivery", "ContentOrigin", "Override", "Session",
    "SessionDose", "TerminationStatus", "VerificationStatus",
    "ApplicationSetup", "AuditEvent", "Beam", "BrachyChannel", "BrachySource", "Course",
    "DeviceRecord", "RTImageLink",
    "DoseReference", "FractionGroup", "FractionGroupBeam", "FractionGroupBrachySetup",
    "MachineHours", "Patient", "Plan", "ToleranceTable", "TreatmentMachine",
    "Prescription", "PrescriptionPlan", "PrescriptionReference",
    "CouchReference", "MachineGroup", "SetupClearance", "Task", "Workitem",
    "UpsEvent", "UpsSubscription", "PatientAlert", "PatientPhoto", "SetupNote",
]
