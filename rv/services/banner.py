"""The patient in view (issue 15): staff upload the photo, clinicians set and retire
alerts, therapists and physicists write set-up notes and accessories. One door each,
audited in the same transaction (rv.services.audit)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from rv.errors import ValidationError
from rv.models import Course, Patient, PatientAlert, PatientPhoto, SetupNote
from rv.names import clean
from rv.photos import PhotoInvalid, photo_prepare
from rv.roles import Action, require
from rv.services.audit import audit_record

User = AbstractBaseUser | AnonymousUser

ALERT_TEXT_MAX = 500
NOTES_MAX = 4000
ACCESSORIES_MAX = 30
ACCESSORY_MAX = 100
# Kinds whose alert says nothing without its text (what allergy? what alert?)
TEXT_REQUIRED = frozenset({PatientAlert.Kind.ALLERGY, PatientAlert.Kind.OTHER})


@transaction.atomic
def patient_photo_upload(*, patient: Patient, data: bytes, user: User) -> PatientPhoto:
    """Check the upload (rv.photos) and store it, re-encoded, as the patient's photo; the
    earlier one stays on the record. Raises PermissionDenied, ValidationError (not a JPEG
    or PNG, too large, too many pixels, broken)."""
    require(user, Action.PATIENT_PHOTO)
    try:
        photo = photo_prepare(data, max_bytes=settings.RV_PHOTO_MAX_BYTES)
    except PhotoInvalid as exc:
        raise ValidationError(exc.message) from exc
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    previous = PatientPhoto.objects.filter(patient=patient).order_by("-id") \
        .values_list("pk", flat=True).first()
    row = PatientPhoto.objects.create(
        patient=patient, image=photo.image, thumbnail=photo.thumbnail,
        content_type=photo.content_type, width=photo.width, height=photo.height,
        sha256=photo.sha256, uploaded_format=photo.uploaded_format,
        uploaded_size=photo.uploaded_size, uploaded_by=cast(Any, user),
        uploaded_at=timezone.now())
    audit_record(action="patient.photo_upload", obj=row, user=user, details={
        "patient": patient.pk, "patient_id": patient.patient_id, "sha256": row.sha256,
        "width": row.width, "height": row.height, "uploaded_format": row.uploaded_format,
        "uploaded_size": row.uploaded_size, "replaces": previous})
    return row


@transaction.atomic
def patient_alert_add(*, patient: Patient, kind: str, text: str, user: User) -> PatientAlert:
    """Set an alert on the patient. Raises PermissionDenied, ValidationError (unknown kind,
    text missing for an allergy or a free-text alert, text too long)."""
    require(user, Action.PATIENT_ALERT)
    if kind not in PatientAlert.Kind.values:
        raise ValidationError(f"Unknown alert kind {kind!r}: one of "
                              f"{', '.join(PatientAlert.Kind.values)}.")
    text = clean(text or "")
    if len(text) > ALERT_TEXT_MAX:
        raise ValidationError(f"The alert's text is {len(text)} characters; at most "
                              f"{ALERT_TEXT_MAX}.")
    if not text and kind in TEXT_REQUIRED:
        raise ValidationError("Say what the alert is about (for an allergy: to what).")
    alert = PatientAlert.objects.create(patient=patient, kind=kind, text=text,
                                        created_by=cast(Any, user), created_at=timezone.now())
    audit_record(action="patient.alert_add", obj=alert, user=user, details={
        "patient": patient.pk, "patient_id": patient.patient_id, "kind": kind, "text": text})
    return alert


@transaction.atomic
def patient_alert_retire(*, alert: PatientAlert, reason: str, user: User) -> PatientAlert:
    """Retire an alert that no longer holds (the pacemaker was removed): it leaves the
    banner, and stays on the record with who, when and why."""
    require(user, Action.PATIENT_ALERT)
    alert = PatientAlert.objects.select_for_update().select_related("patient").get(pk=alert.pk)
    if alert.retired_at is not None:
        raise ValidationError("This alert is already retired.")
    reason = clean(reason or "")
    if not reason:
        raise ValidationError("Give the reason the alert no longer holds.")
    if len(reason) > ALERT_TEXT_MAX:
        raise ValidationError(f"The reason is {len(reason)} characters; at most "
                              f"{ALERT_TEXT_MAX}.")
    alert.retired_by = cast(Any, user)
    alert.retired_at = timezone.now()
    alert.retired_reason = reason
    alert.save(update_fields=["retired_by", "retired_at", "retired_reason"])
    audit_record(action="patient.alert_retire", obj=alert, user=user, details={
        "patient": alert.patient_id, "patient_id": alert.patient.patient_id,
        "kind": alert.kind, "text": alert.text, "reason": reason})
    return alert


def accessories_from(items: Iterable[str]) -> list[str]:
    """Accessories as a clean list: each trimmed, empty ones dropped, each once."""
    out: dict[str, None] = {}
    for item in items:
        text = clean(str(item))
        if text:
            out.setdefault(text, None)
    return list(out)


@transaction.atomic
def setup_note_set(*, patient: Patient, course: Course | None = None, notes: str,
                   accessories: Iterable[str], user: User) -> SetupNote:
    """Write the set-up notes and accessories of the patient (course None) or of one of
    their courses, replacing what was there (the audit event keeps both)."""
    require(user, Action.SETUP_NOTE)
    if course is not None and course.patient_id != patient.pk:
        raise ValidationError("That course belongs to another patient.")
    notes = "".join(ch for ch in (notes or "").replace("\r\n", "\n")
                    if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
                    ).strip()
    if len(notes) > NOTES_MAX:
        raise ValidationError(f"The set-up notes are {len(notes)} characters; at most "
                              f"{NOTES_MAX}.")
    items = accessories_from(accessories)
    if len(items) > ACCESSORIES_MAX:
        raise ValidationError(f"{len(items)} accessories; at most {ACCESSORIES_MAX}.")
    if any(len(i) > ACCESSORY_MAX for i in items):
        raise ValidationError(f"An accessory's name is at most {ACCESSORY_MAX} characters.")
    patient = Patient.objects.select_for_update().get(pk=patient.pk)  # one row per target
    note = SetupNote.objects.filter(patient=patient, course=course).first()
    before = {"notes": note.notes, "accessories": note.accessories} if note else None
    if note is None:
        note = SetupNote(patient=patient, course=course)
    note.notes, note.accessories = notes, items
    note.updated_by, note.updated_at = cast(Any, user), timezone.now()
    note.save()
    audit_record(action="patient.setup_note_set", obj=note, user=user, details={
        "patient": patient.pk, "patient_id": patient.patient_id,
        "course": course.code if course else None, "before": before,
        "after": {"notes": notes, "accessories": items}})
    return note
