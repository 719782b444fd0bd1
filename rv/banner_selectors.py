"""Reads for the patient in view (issue 15): the banner of one patient (three queries,
however many alerts and notes), and the day list's photo and alerts of many patients
(two queries, however many rows)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Max, Q
from django.utils import timezone

from rv.models import Course, Patient, PatientAlert, PatientPhoto, SetupNote
from rv.names import age_text, display_name


@dataclass(frozen=True)
class PhotoRef:
    """Which photo to show (its bytes are fetched by the browser, from rv-patient-photo)."""

    pk: int
    width: int
    height: int


@dataclass(frozen=True)
class PatientBanner:
    patient: Patient
    name: str
    age: str
    photo: PhotoRef | None
    alerts: list[PatientAlert]
    notes: list[SetupNote] = field(default_factory=list)  # the patient's, then the course's
    course: Course | None = None

    @property
    def accessories(self) -> list[str]:
        seen: dict[str, None] = {}
        for note in self.notes:
            for item in note.accessories or []:
                seen.setdefault(str(item), None)
        return list(seen)


def current_photo(*, patient_id: int) -> PhotoRef | None:
    row = (PatientPhoto.objects.filter(patient_id=patient_id).order_by("-id")
           .values_list("pk", "width", "height").first())
    return PhotoRef(*row) if row else None


def active_alerts(*, patient_ids: Iterable[int]) -> dict[int, list[PatientAlert]]:
    out: dict[int, list[PatientAlert]] = {}
    for alert in (PatientAlert.objects.filter(patient_id__in=list(patient_ids),
                                              retired_at__isnull=True)
                  .select_related("created_by").order_by("created_at", "id")):
        out.setdefault(alert.patient_id, []).append(alert)
    return out


def patient_banner(*, patient: Patient, course: Course | None = None,
                   today: date | None = None) -> PatientBanner:
    """What the banner shows of the patient (and of the course in view): three queries."""
    which = Q(course__isnull=True)
    if course is not None:
        which |= Q(course=course)
    notes = list(SetupNote.objects.filter(which, patient=patient)
                 .select_related("updated_by").order_by("id"))
    notes.sort(key=lambda n: n.course_id is not None)  # the patient's first
    return PatientBanner(
        patient=patient, name=display_name(patient.patient_name),
        age=age_text(patient.birth_date, today or timezone.localdate()),
        photo=current_photo(patient_id=patient.pk),
        alerts=active_alerts(patient_ids=[patient.pk]).get(patient.pk, []),
        notes=[n for n in notes if n.notes or n.accessories], course=course)


@dataclass(frozen=True)
class PatientCells:
    """The day list's cells of one patient."""

    name: str
    age: str
    photo_id: int | None
    alerts: list[PatientAlert]


def patient_cells(*, patients: Iterable[Patient], today: date | None = None
                  ) -> dict[int, PatientCells]:
    """Name, age, photo and active alerts of many patients, by patient pk: two queries."""
    people = {p.pk: p for p in patients}
    photos = dict(PatientPhoto.objects.filter(patient_id__in=list(people))
                  .values("patient_id").annotate(newest=Max("id"))
                  .values_list("patient_id", "newest"))
    alerts = active_alerts(patient_ids=people)
    day = today or timezone.localdate()
    return {pk: PatientCells(name=display_name(p.patient_name),
                             age=age_text(p.birth_date, day), photo_id=photos.get(pk),
                             alerts=alerts.get(pk, [])) for pk, p in people.items()}


def patient_alert_history(*, patient: Patient) -> list[PatientAlert]:
    """Every alert of the patient, retired ones too (the editing page)."""
    return list(PatientAlert.objects.filter(patient=patient)
                .select_related("created_by", "retired_by").order_by("-created_at", "-id"))


def patient_photo_history(*, patient: Patient) -> list[PatientPhoto]:
    """The patient's photos, newest first, without their bytes."""
    return list(PatientPhoto.objects.filter(patient=patient).defer("image", "thumbnail")
                .select_related("uploaded_by").order_by("-id"))
