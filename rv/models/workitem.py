"""The treatment machine's worklist (issue 13, IHE-RO TDW-II): one Unified Procedure Step
per fraction to deliver on a TDW-II machine (PS3.4 Annex CC; PS3.3 C.30 Unified Procedure
Step modules). Verity is the Treatment Management System: it makes the steps from its
schedule, the machine (Treatment Delivery Device) claims, updates and ends them over DICOM.

`dataset` is the step's attribute set as DICOM JSON (PS3.18 F.2), what C-FIND, N-GET and N-SET
read and write; the columns beside it are what the clinic's pages, the matching and the safety
rules need, kept in step by rv.services.workitems (the one door).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

import archive.models
from rv.models.machine import TreatmentMachine
from rv.models.plan import Plan
from rv.models.treatment import Appointment


class Workitem(models.Model):
    class State(models.TextChoices):
        # PS3.4 CC.1.1 Procedure Step State (0074,1000), as DICOM spells them
        SCHEDULED = "SCHEDULED"
        IN_PROGRESS = "IN PROGRESS"
        CANCELED = "CANCELED"
        COMPLETED = "COMPLETED"

    class Readiness(models.TextChoices):
        # PS3.3 C.30.2 Input Readiness State (0040,4041)
        READY = "READY"
        INCOMPLETE = "INCOMPLETE"
        UNAVAILABLE = "UNAVAILABLE"

    class DeliveryType(models.TextChoices):
        # Treatment Delivery Type (300A,00CE) of the step (Scheduled Processing Parameters)
        TREATMENT = "TREATMENT"
        CONTINUATION = "CONTINUATION"

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workitems",
                             help_text="the revision to treat when the step was made")
    machine = models.ForeignKey(TreatmentMachine, on_delete=models.PROTECT,
                                related_name="workitems")
    appointment = models.ForeignKey(Appointment, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="workitems")
    fraction_number = models.PositiveIntegerField()
    delivery_type = models.CharField(max_length=16, choices=DeliveryType.choices,
                                     default=DeliveryType.TREATMENT)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SCHEDULED,
                             db_index=True)
    readiness = models.CharField(max_length=16, choices=Readiness.choices,
                                 default=Readiness.INCOMPLETE)
    readiness_reasons = models.JSONField(default=list, blank=True,
                                         help_text="why the step is not READY")
    scheduled_start = models.DateTimeField(db_index=True)
    # PS3.4 CC.1.1.1: known to the performer and us only; never returned by C-FIND or N-GET.
    transaction_uid = models.CharField(max_length=64, blank=True)
    performer_ae = models.CharField(max_length=16, blank=True,
                                    help_text="the AE title that claimed the step")
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_percent = models.FloatField(null=True, blank=True)
    progress_description = models.CharField(max_length=200, blank=True)
    progress_beam = models.IntegerField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    dataset = models.JSONField(default=dict, help_text="the UPS attributes, DICOM JSON")
    instruction = models.ForeignKey(archive.models.Instance, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+",
                                    help_text="the RT Beams Delivery Instruction")
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="replaced_by",
                                 help_text="the step this one replaces or continues")
    cancel_reason = models.TextField(blank=True)
    # What needs a physicist: a continuation after a machine stop or a differing record
    # (not READY until reviewed), or an ended step whose records do not add up.
    review_reasons = models.JSONField(default=list, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    lenient_supplied = models.JSONField(default=list, blank=True,
                                        help_text="final-state attributes Verity supplied")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scheduled_start", "id"]
        indexes = [models.Index(fields=["machine", "state", "scheduled_start"],
                                name="rv_workitem_worklist")]
        constraints = [
            # One device at a time on a fraction (second line behind the plan row lock).
            models.UniqueConstraint(fields=["plan", "fraction_number"],
                                    condition=Q(state="IN PROGRESS"),
                                    name="rv_workitem_one_claim_per_fraction"),
            # One open step per appointment.
            models.UniqueConstraint(fields=["appointment"],
                                    condition=Q(state__in=["SCHEDULED", "IN PROGRESS"]),
                                    name="rv_workitem_one_open_per_appointment"),
        ]

    def __str__(self) -> str:
        return f"UPS {self.sop_instance_uid} fx {self.fraction_number} {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state in (self.State.SCHEDULED, self.State.IN_PROGRESS)

    @property
    def flagged(self) -> bool:
        """Something here waits on a physicist's review."""
        return bool(self.review_reasons) and self.reviewed_at is None
