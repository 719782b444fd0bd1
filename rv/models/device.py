"""What treatment machines and imaging systems send by themselves (issue 8).

`DeviceRecord`: an RT Beams / RT Ion Beams / RT Brachy Treatment Record (PS3.3 A.29, A.50,
A.30) with Treatment Record Content Origin DEVICE (or none), and what Verity made of it.
`RTImageLink`: an RT Image (PS3.3 A.17: portal, kV, DRR) tied to patient, plan, beam and
fraction through its references, with its review. See docs/machine-records.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

import archive.models
from rv.models.patient import Patient
from rv.models.plan import Beam, Plan
from rv.models.treatment import Session


class DeviceRecord(models.Model):
    class Status(models.TextChoices):
        CREATED = "CREATED", "session created from it"
        MATCHED = "MATCHED", "agrees with the session recorded at the console"
        RECONCILED = "RECONCILED", "differs from the session recorded: flagged for review"
        UNMATCHED = "UNMATCHED", "no plan found: waits for a physicist"
        ASSIGNED = "ASSIGNED", "assigned to a plan by a physicist"

    instance = models.OneToOneField(archive.models.Instance, on_delete=models.PROTECT,
                                    related_name="rv_device_record")
    sop_class_uid = models.CharField(max_length=64)
    # Referenced RT Plan Sequence > Referenced SOP Instance UID (PS3.3 C.8.8.17)
    referenced_plan_uid = models.CharField(max_length=64, blank=True, db_index=True)
    machine_name = models.CharField(max_length=64, blank=True,
                                    help_text="Treatment Machine Name (C.8.8.18)")
    fraction_number = models.PositiveIntegerField(null=True, blank=True,
                                                  help_text="Current Fraction Number")
    continuation = models.BooleanField(
        default=False, help_text="Treatment Delivery Type CONTINUATION")
    treated_at = models.DateTimeField(null=True, blank=True)
    # What the machine says it delivered, as parsed: {"beams": [...], "channels": [...]}
    content = models.JSONField(default=dict)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="device_records")
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="device_records")
    workitem = models.ForeignKey("rv.Workitem", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="device_records",
                                 help_text="the TDW-II step it was delivered under")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    # Each: {"beam", "field", "recorded", "device"} (reconciled with a console session)
    differences = models.JSONField(default=list, blank=True)
    # Verification of a session created from it: Violation.as_dict() values
    violations = models.JSONField(default=list, blank=True)
    problem = models.TextField(blank=True, help_text="why it could not be matched")
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    assigned_at = models.DateTimeField(null=True, blank=True)
    # A physicist's or physician's review of the differences / violations flagged
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"device record {self.instance_id} fx {self.fraction_number} {self.status}"

    @property
    def flagged(self) -> bool:
        """Disagrees with the console or carries violations, and nobody has reviewed it."""
        return bool(self.differences or self.violations) and self.reviewed_at is None


class RTImageLink(models.Model):
    class Kind(models.TextChoices):
        PORTAL = "PORTAL", "portal (MV)"
        KV = "KV", "kV"
        DRR = "DRR", "DRR"

    class Review(models.TextChoices):
        PENDING = "PENDING", "pending"
        APPROVED = "APPROVED", "approved"
        REJECTED = "REJECTED", "rejected"

    instance = models.OneToOneField(archive.models.Instance, on_delete=models.PROTECT,
                                    related_name="rv_image")
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="rt_images")
    referenced_plan_uid = models.CharField(max_length=64, blank=True, db_index=True)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="rt_images")
    beam_number = models.IntegerField(null=True, blank=True,
                                      help_text="Referenced Beam Number (300C,0006)")
    beam = models.ForeignKey(Beam, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="rt_images")
    fraction_number = models.PositiveIntegerField(null=True, blank=True,
                                                  help_text="Fraction Number (3002,0029); "
                                                  "the session(s) of that fraction show it")
    label = models.CharField(max_length=64, blank=True, help_text="RT Image Label")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    rows = models.IntegerField(null=True, blank=True)
    columns = models.IntegerField(null=True, blank=True)
    review_status = models.CharField(max_length=16, choices=Review.choices,
                                     default=Review.PENDING, db_index=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plan", "fraction_number", "beam_number", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.label or self.instance_id}"
