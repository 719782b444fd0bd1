"""UPS Watch and UPS Event (issue 14; PS3.4 CC.2.3, CC.2.4): who is told about the worklist's
steps, and the N-EVENT-REPORTs waiting to be sent (the outbox).

A subscription names its Receiving AE by AE title (the node registry is dicom_net's, which
rv never imports; the door checks the title is a registered node, the sender resolves it
again). Table CC.2.3-2's states are kept as rows: a row with a workitem is that AE's UPS
Subscription State for the step ("Subscribed with/w/o Lock"); a row without one is its
Global Subscription State (global, or filtered global with the Matching Keys as DICOM
JSON), which subscribes the AE to each new step as it is made (unless suspended).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from rv.models.workitem import Workitem


class UpsSubscription(models.Model):
    class Kind(models.TextChoices):
        WORKITEM = "workitem", "one step"
        GLOBAL = "global", "every step"
        FILTERED = "filtered", "every step matching a filter"

    ae_title = models.CharField(max_length=16, db_index=True,
                                help_text="the Receiving AE (0074,1234)")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    workitem = models.ForeignKey(Workitem, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="subscriptions")
    deletion_lock = models.BooleanField(
        default=False, help_text="Deletion Lock (0074,1230); Verity never deletes a step")
    filter = models.JSONField(default=dict, blank=True,
                              help_text="filtered global: the Matching Keys, DICOM JSON")
    suspended = models.BooleanField(
        default=False, help_text="global: suspended (N-ACTION 5), new steps are not "
                                 "subscribed; the steps subscribed so far still are")
    suspended_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.CharField(max_length=16, blank=True,
                                    help_text="the calling AE that asked")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ae_title", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["ae_title", "workitem"],
                                    condition=Q(workitem__isnull=False),
                                    name="rv_upssub_one_per_step"),
            models.UniqueConstraint(fields=["ae_title"], condition=Q(workitem__isnull=True),
                                    name="rv_upssub_one_global"),
            models.CheckConstraint(
                condition=(Q(kind="workitem", workitem__isnull=False)
                           | Q(kind__in=["global", "filtered"], workitem__isnull=True)),
                name="rv_upssub_kind_matches_workitem"),
        ]

    def __str__(self) -> str:
        what = self.workitem.sop_instance_uid if self.workitem is not None else self.kind
        return f"{self.ae_title} -> {what}"


class UpsEvent(models.Model):
    """One N-EVENT-REPORT for one subscriber, written in the same transaction as the change
    it reports (DESIGN.md: side effects as rows), sent by `manage.py ups_event_worker`."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    class Type(models.IntegerChoices):  # Table CC.2.4-1
        STATE_REPORT = 1, "UPS State Report"
        CANCEL_REQUESTED = 2, "UPS Cancel Requested"
        PROGRESS_REPORT = 3, "UPS Progress Report"
        SCP_STATUS_CHANGE = 4, "SCP Status Change"
        ASSIGNED = 5, "UPS Assigned"

    ae_title = models.CharField(max_length=16, help_text="the subscriber's AE title")
    workitem_uid = models.CharField(
        max_length=64, help_text="the step's SOP Instance UID (SCP Status Change: the "
                                 "well-known global subscription UID)")
    event_type = models.PositiveSmallIntegerField(choices=Type.choices)
    event_info = models.JSONField(default=dict, help_text="Event Information, DICOM JSON")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="not sent before this time")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="rv_upsevent_due"),
                   models.Index(fields=["ae_title", "status"], name="rv_upsevent_ae")]

    def __str__(self) -> str:
        return f"UPS event #{self.pk} {self.get_event_type_display()} to {self.ae_title}: " \
               f"{self.status}"
