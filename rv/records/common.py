"""What every record (and delivery instruction) Verity builds shares: the plan's patient and
study, Verity's own series, its equipment, the SOP Common module and, for a record, the RT
General Treatment Record module.

Modules (PS3.3): C.7.1.1 Patient, C.7.2.1 General Study, C.8.8.1 RT Series (C.7.3.1 General
Series for a delivery instruction), C.7.5.1 General Equipment, C.12.1 SOP Common, C.8.8.17 RT
General Treatment Record. Patient and study are
copied from the plan's stored data set (the archive file of `plan.instance`), so a record
joins the plan's patient and study in the archive index and Query/Retrieve finds it there.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

import archive.models
from archive import storage
from rv.models import Plan, Session

MANUFACTURER = "Verity"
SOFTWARE_VERSIONS = "Verity record builders 1"
# One Verity series per study for each kind (Series Description is how it is found again).
RECORDS_SERIES = ("Verity treatment records", 9001)
SUMMARY_SERIES = ("Verity treatment summaries", 9002)
INSTRUCTIONS_SERIES = ("Verity delivery instructions", 9003)

# PS3.3 C.7.1.1 Patient Module (and the Type 2 keys that must be present, even empty).
_PATIENT = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
            "OtherPatientIDsSequence", "PatientComments", "EthnicGroup",
            "PatientIdentityRemoved", "DeidentificationMethod")
_PATIENT_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
# PS3.3 C.7.2.1 General Study Module.
_STUDY = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
          "AccessionNumber", "StudyDescription", "IssuerOfAccessionNumberSequence")
_STUDY_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                "AccessionNumber")


def clinic_time(when: datetime) -> datetime:
    """`when` in the clinic's time zone (settings.TIME_ZONE)."""
    return timezone.localtime(when, ZoneInfo(settings.TIME_ZONE))


def da(when: datetime) -> str:
    return clinic_time(when).strftime("%Y%m%d")


def tm(when: datetime) -> str:
    return clinic_time(when).strftime("%H%M%S")


def ds_number(value: float) -> str:
    """A DS value (at most 16 characters) for a float."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.8e}"[:16]


def plan_dataset(plan: Plan) -> Dataset:
    """The plan as stored in the archive (bytes as received)."""
    path = storage.absolute_path(plan.instance.path)
    return dcmread(path, force=True)


# PS3.5 6.2: what a DA or TM value must look like; a plan's "UNKNOWN" birth date is not copied.
_VALID = {"DA": re.compile(r"\d{8}"), "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")}


def _copy(dst: Dataset, src: Dataset, keys: tuple[str, ...], type2: tuple[str, ...]) -> None:
    for key in keys:
        if key not in src:
            continue
        elem = src[key]
        pattern = _VALID.get(elem.VR)
        if pattern is not None and elem.value and not pattern.fullmatch(str(elem.value).strip()):
            continue  # an invalid value stays out of the record (Type 2: present, empty)
        dst[key] = elem
    for key in type2:
        if key not in dst:
            setattr(dst, key, None)


# PS3.3 C.7.1.1 Patient's Sex enumerated values: another value a plan carries ("ANON",
# "UNKNOWN") is left out of the record (Type 2: present, empty) rather than copied invalid.
_PATIENT_SEX = frozenset({"M", "F", "O"})


def _series(study_uid: str, description: str, modality: str) -> tuple[str, int]:
    """Verity's series of this kind in the study: (Series Instance UID, next Instance Number).
    The first instance of a study makes a new series."""
    series = archive.models.Series.objects.filter(
        study__study_instance_uid=study_uid, series_description=description,
        modality=modality).order_by("pk").first()
    if series is None:
        return generate_uid(), 1
    return series.series_instance_uid, series.instances.count() + 1


def new_instance(*, plan: Plan, sop_class_uid: str, series: tuple[str, int], modality: str,
                 plan_ds: Dataset | None = None, created: datetime | None = None) -> Dataset:
    """A data set for `plan`'s patient and study in Verity's own series of this kind, with
    the modules every object Verity builds shares filled: SOP Common (and its Instance
    Number), Patient, General Study, the series' Modality, Series Instance UID, Number and
    Description (General Series; RT Series for a record adds Operators' Name) and General
    Equipment. `created`: the Instance Creation Date and Time (default now)."""
    src = plan_dataset(plan) if plan_ds is None else plan_ds
    now = timezone.now() if created is None else created
    ds = Dataset()
    # C.12.1 SOP Common. UTF-8 whatever the plan's character set: pydicom decoded the plan's
    # text, and a user's name may need more than the default repertoire.
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate = da(now)
    ds.InstanceCreationTime = tm(now)
    # C.7.1.1 Patient, C.7.2.1 General Study: the plan's
    _copy(ds, src, _PATIENT, _PATIENT_TYPE2)
    if ds.PatientSex and str(ds.PatientSex) not in _PATIENT_SEX:
        ds.PatientSex = None
    _copy(ds, src, _STUDY, _STUDY_TYPE2)
    # C.7.3.1 General Series / C.8.8.1 RT Series: Verity's own
    description, number = series
    series_uid, instance_number = _series(str(src.StudyInstanceUID), description, modality)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    # C.7.5.1 General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = SOFTWARE_VERSIONS
    ds.StationName = settings.RV_AE_TITLE[:16]
    ds.InstanceNumber = instance_number
    return ds


def new_record(*, plan: Plan, sop_class_uid: str, when: datetime,
               series: tuple[str, int] = RECORDS_SERIES, plan_ds: Dataset | None = None,
               ) -> Dataset:
    """A record data set for `plan`'s patient and study with the shared modules filled:
    Patient, General Study, RT Series, General Equipment, SOP Common, and of C.8.8.17 RT
    General Treatment Record the Instance Number, Treatment Date / Time and the Referenced
    RT Plan Sequence (a builder adds what is its own)."""
    ds = new_instance(plan=plan, sop_class_uid=sop_class_uid, series=series,
                      modality="RTRECORD", plan_ds=plan_ds)
    ds.OperatorsName = None  # C.8.8.1 RT Series, Type 2
    # C.8.8.17 RT General Treatment Record (and its Instance Number, set above)
    ds.TreatmentDate = da(when)
    ds.TreatmentTime = tm(when)
    ds.ReferencedRTPlanSequence = Sequence([referenced_plan(plan)])
    return ds


def referenced_plan(plan: Plan) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = plan.sop_class_uid
    item.ReferencedSOPInstanceUID = plan.sop_instance_uid
    return item


def person_name(user: object) -> str:
    """A user as a PN value: Last^First, else the user name."""
    last, first = getattr(user, "last_name", ""), getattr(user, "first_name", "")
    if last or first:
        return f"{last}^{first}"[:64]
    return str(user.get_username())[:64]  # type: ignore[attr-defined]


def machine_record(session: Session) -> Sequence:
    """PS3.3 C.8.8.18 RT Treatment Machine Record: Treatment Machine Sequence."""
    m = Dataset()
    m.TreatmentMachineName = session.machine.name[:16]
    m.Manufacturer = session.machine.manufacturer or None
    m.InstitutionName = None
    m.ManufacturerModelName = session.machine.model_name or None
    m.DeviceSerialNumber = None
    return Sequence([m])


