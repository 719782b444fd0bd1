"""A physician's prescription (issue 15): per course and treatment site, what is to be
given (dose per fraction, fractions, total dose, fractionation pattern; technique, modality
and energy where wanted) and the limits at its reference points. Signed with the
physician's password; an amendment is a new signed version and the one before is kept,
superseded (docs/prescriptions.md).

DICOM's RT Prescription Module (PS3.3 C.8.8.10) is the planning system's copy inside a
plan; this is the physician's own, which a plan is checked against at approval."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from rv.models.patient import Course
from rv.models.plan import Plan


class Prescription(models.Model):
    """One version of the prescription for one site of one course."""

    class Status(models.TextChoices):
        DRAFT = "DRAFT", "draft, not signed"
        SIGNED = "SIGNED", "signed"
        SUPERSEDED = "SUPERSEDED", "amended: superseded by a later version"

    class Modality(models.TextChoices):
        # PS3.3 C.8.8.14 Radiation Type (300A,00C6), and brachytherapy
        PHOTON = "PHOTON", "photon"
        ELECTRON = "ELECTRON", "electron"
        PROTON = "PROTON", "proton"
        ION = "ION", "ion"
        NEUTRON = "NEUTRON", "neutron"
        BRACHY = "BRACHY", "brachytherapy"

    class Fractionation(models.TextChoices):
        DAILY_WEEKDAYS = "DAILY_WEEKDAYS", "daily, Monday to Friday"
        DAILY = "DAILY", "daily, every day"
        TWICE_DAILY = "TWICE_DAILY", "twice a day (at least the minimum interval apart)"
        ALTERNATE_DAYS = "ALTERNATE_DAYS", "every other weekday"
        WEEKLY = "WEEKLY", "once a week"
        OTHER = "OTHER", "as the note says"

    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="prescriptions")
    site = models.CharField(max_length=64, help_text="treatment site, e.g. 'Prostate'")
    version = models.PositiveIntegerField(default=1)
    previous_version = models.OneToOneField("self", null=True, blank=True,
                                            on_delete=models.PROTECT,
                                            related_name="next_version")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT,
                              db_index=True)
    technique = models.CharField(max_length=64, blank=True, help_text="e.g. VMAT, IMRT, 3D-CRT")
    modality = models.CharField(max_length=16, choices=Modality.choices, blank=True,
                                help_text="checked at approval where given")
    energy = models.FloatField(null=True, blank=True,
                               help_text="nominal energy (MV, MeV), checked where given")
    dose_per_fraction = models.FloatField(help_text="Gy to the primary reference point")
    fractions = models.PositiveIntegerField()
    total_dose = models.FloatField(help_text="Gy to the primary reference point")
    fractionation = models.CharField(max_length=16, choices=Fractionation.choices,
                                     default=Fractionation.DAILY_WEEKDAYS)
    fractionation_note = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    amendment_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["course", "site", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["course", "site", "version"],
                                    name="rv_prescription_version_unique"),
            # Behind the course lock: one current (draft or signed) version per site.
            models.UniqueConstraint(fields=["course", "site"],
                                    condition=~Q(status="SUPERSEDED"),
                                    name="rv_prescription_one_current_per_site"),
        ]

    def __str__(self) -> str:
        return f"{self.site} v{self.version} ({self.status})"

    @property
    def primary(self) -> PrescriptionReference | None:
        return next((r for r in self.references.all() if r.primary), None)

    def versions(self) -> list[Prescription]:
        """This version and the ones before it, newest first."""
        chain: list[Prescription] = [self]
        while chain[-1].previous_version_id is not None:
            prev = chain[-1].previous_version
            assert prev is not None
            chain.append(prev)
        return chain


class PrescriptionReference(models.Model):
    """A reference point of the prescription and its limits. Its name is matched (case and
    surrounding spaces aside) against a plan's Dose Reference Description (300A,0016); the
    primary one carries the prescribed dose."""

    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE,
                                     related_name="references")
    name = models.CharField(max_length=64)
    primary = models.BooleanField(default=False)
    session_limit = models.FloatField(null=True, blank=True, help_text="Gy in one session")
    daily_limit = models.FloatField(null=True, blank=True, help_text="Gy in one day")
    total_limit = models.FloatField(null=True, blank=True,
                                    help_text="Gy over every plan of the prescription")

    class Meta:
        ordering = ["prescription", "-primary", "name"]
        constraints = [
            models.UniqueConstraint(fields=["prescription", "name"],
                                    name="rv_prescription_reference_unique"),
            models.UniqueConstraint(fields=["prescription"], condition=Q(primary=True),
                                    name="rv_prescription_one_primary"),
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (primary)' if self.primary else ''}"


class PrescriptionPlan(models.Model):
    """A physician's statement that a plan (and its later revisions) is for a site of its
    course. Without one, a plan is for the course's only prescribed site. `partial`: one of
    several sequential or boost plans, whose fractions other plans complete."""

    course = models.ForeignKey(Course, on_delete=models.PROTECT,
                               related_name="prescription_links")
    site = models.CharField(max_length=64)
    plan = models.OneToOneField(Plan, on_delete=models.PROTECT,
                                related_name="prescription_link")
    partial = models.BooleanField(default=False)
    linked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "site", "plan"]

    def __str__(self) -> str:
        return f"{self.plan} -> {self.site}{' (part)' if self.partial else ''}"
