"""Patient and course: the clinical side of a patient and the episodes of their treatment."""

from __future__ import annotations

from django.db import models

import archive.models
from rv.names import display_name


class Patient(models.Model):
    # PS3.3 C.7.1.1 Patient Module (the demographics rv keeps as its own copy)
    archive_patient = models.OneToOneField(archive.models.Patient, on_delete=models.PROTECT,
                                           related_name="rv_patient")
    patient_id = models.CharField(max_length=64, db_index=True, blank=True)
    patient_name = models.CharField(max_length=324, db_index=True, blank=True)
    # rv.names.search_key(patient_name): folded words, each after a space (issue 15);
    # written by the service that writes the name, read by rv.selectors.patient_list.
    search_name = models.TextField(blank=True, default="", editable=False)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient_name", "patient_id"]

    def __str__(self) -> str:
        return f"{display_name(self.patient_name) or '(no name)'} [{self.patient_id or 'no ID'}]"


class Course(models.Model):
    """One episode of a patient's radiotherapy: "C1", "C2", ... holding one or more plans."""

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        COMPLETED = "COMPLETED"

    class TreatmentStatus(models.TextChoices):
        # PS3.3 C.8.8.23 Current Treatment Status (3008,0200)
        NOT_STARTED = "NOT_STARTED"
        ON_TREATMENT = "ON_TREATMENT"
        ON_BREAK = "ON_BREAK"
        SUSPENDED = "SUSPENDED"
        STOPPED = "STOPPED"
        COMPLETED = "COMPLETED"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="courses")
    code = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    treatment_status = models.CharField(max_length=16, choices=TreatmentStatus.choices,
                                        default=TreatmentStatus.NOT_STARTED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "code"],
                                               name="rv_course_patient_code_unique")]
        ordering = ["patient", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.code} ({self.patient.patient_id})"
