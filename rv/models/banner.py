"""The patient in view (issue 15): the photo staff take, the alerts clinicians set, the
set-up notes and accessories of a patient or a course. Written by rv.services.banner,
read by rv.banner_selectors for the banner every clinical page shows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from rv.models.patient import Course, Patient


class PatientPhoto(models.Model):
    """A photo for identification, as rv re-encoded it (JPEG; never the uploaded bytes,
    rv.photos). The newest is the patient's photo; earlier ones stay, on the record."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="photos")
    image = models.BinaryField(help_text="JPEG, at most rv.photos.STORED_SIDE pixels a side")
    thumbnail = models.BinaryField(help_text="JPEG, at most rv.photos.THUMB_SIDE a side")
    content_type = models.CharField(max_length=32, default="image/jpeg")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="of the stored image")
    uploaded_format = models.CharField(max_length=8, help_text="JPEG or PNG, as uploaded")
    uploaded_size = models.PositiveIntegerField(help_text="bytes, as uploaded")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    uploaded_at = models.DateTimeField()

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [models.Index(fields=["patient", "-id"], name="rv_photo_patient_newest")]

    def __str__(self) -> str:
        return f"photo {self.pk} of patient {self.patient_id}"


class PatientAlert(models.Model):
    """What everyone treating the patient must know: set by a clinician, shown in the
    banner until retired (never deleted)."""

    class Kind(models.TextChoices):
        ALLERGY = "ALLERGY", "Allergy"
        DEVICE = "DEVICE", "Pacemaker / implanted device"
        DO_NOT_IMAGE = "DO_NOT_IMAGE", "Do not image"
        INFECTION = "INFECTION", "Infection control"
        OTHER = "OTHER", "Alert"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    text = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField()
    retired_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["patient"], condition=Q(retired_at__isnull=True),
                                name="rv_alert_patient_active")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text}" if self.text \
            else self.get_kind_display()


class SetupNote(models.Model):
    """Set-up notes (free text) and accessories (a list: mask, knee rest, bolus ...) of a
    patient, or of one course of theirs. One row each, changed in place; every change is in
    the audit trail with the text before and after."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT,
                                related_name="setup_notes")
    course = models.ForeignKey(Course, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="setup_notes")
    notes = models.TextField(blank=True)
    accessories = models.JSONField(default=list, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient"], condition=Q(course__isnull=True),
                                    name="rv_setupnote_one_per_patient"),
            models.UniqueConstraint(fields=["course"], condition=Q(course__isnull=False),
                                    name="rv_setupnote_one_per_course"),
        ]
        ordering = ["patient", "course", "id"]

    def __str__(self) -> str:
        return f"set-up notes of patient {self.patient_id}" + (
            f" course {self.course_id}" if self.course_id else "")
