"""Check before beam-on (issue 11): the set-up clearance a record refers to, the couch
positions captured at the first fraction, and machines a physicist declared beam-matched."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from rv.models.machine import TreatmentMachine
from rv.models.plan import Plan


class SetupClearance(models.Model):
    """One set-up check that passed (or whose overridable violations a physicist or
    physician overrode): who, when, what was checked against what, and any overrides
    (`overrides`, rv.Override rows). At most one session records against it."""

    class Status(models.TextChoices):
        CLEARED = "CLEARED"
        CLEARED_OVR = "CLEARED_OVR", "cleared with override"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="clearances",
                             help_text="the revision to treat, as checked")
    machine = models.ForeignKey(TreatmentMachine, on_delete=models.PROTECT,
                                related_name="clearances")
    appointment = models.ForeignKey("rv.Appointment", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="clearances")
    fraction_number = models.PositiveIntegerField()
    continuation = models.BooleanField(default=False)
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    checked_at = models.DateTimeField(db_index=True)
    identity_confirmed = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CLEARED)
    # Per beam: {"beam", "label", "planned": {...}, "actual": {...}, "tolerance": {...}}
    checked = models.JSONField(default=list, blank=True)
    violations = models.JSONField(default=list, blank=True,
                                  help_text="the overridden violations, as found")
    date_reason = models.TextField(blank=True,
                                   help_text="why an appointment of another day is treated")
    # Notices that do not block (Violation.as_dict() values), e.g. a prescription's total
    # dose within one fraction of its limit: shown at the console and in the API.
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"clearance {self.pk}: {self.plan} fraction {self.fraction_number}"


class CouchReference(models.Model):
    """A beam's table-top positions as recorded at fraction 1 (plans rarely carry them):
    once confirmed by a second person they are what later fractions are checked against,
    with the beam's table-top tolerances (as ARIA and MOSAIQ do)."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="couch_references",
                             help_text="the revision the positions were captured on")
    beam_number = models.IntegerField()
    table_top_vertical = models.FloatField(null=True, blank=True)
    table_top_longitudinal = models.FloatField(null=True, blank=True)
    table_top_lateral = models.FloatField(null=True, blank=True)
    captured_session = models.ForeignKey("rv.Session", on_delete=models.PROTECT,
                                         related_name="couch_references")
    captured_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "beam_number"]
        constraints = [models.UniqueConstraint(fields=["plan", "beam_number"],
                                               name="rv_couch_reference_one_per_beam")]

    def __str__(self) -> str:
        return f"couch reference {self.plan} beam {self.beam_number}"


class MachineGroup(models.Model):
    """Machines a physicist declared beam-matched: a plan for one may be treated on another."""

    name = models.CharField(max_length=64, unique=True)
    machines = models.ManyToManyField(TreatmentMachine, related_name="groups")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
