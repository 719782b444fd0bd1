"""Task lists (issue 15; what MOSAIQ calls QCLs and ARIA care paths): work the clinic owes a
patient's treatment, made by the events that call for it (a fraction delivered, a session
flagged NOT_VERIFIED, an image received, a machine record nobody could match, a worklist step
flagged), each with a due date, for a role or a person, and closed by a signed-off completion
or by the review it stands for. Written only by rv.services.tasks (docs/tasks.md)."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q

from rv.models.audit import AuditEvent
from rv.models.device import DeviceRecord, RTImageLink
from rv.models.patient import Course, Patient
from rv.models.plan import Plan
from rv.models.treatment import Session
from rv.models.workitem import Workitem


class Task(models.Model):
    class Kind(models.TextChoices):
        FIRST_FRACTION_CHECK = "FIRST_FRACTION_CHECK", "first-fraction double check"
        WEEKLY_PHYSICS_CHECK = "WEEKLY_PHYSICS_CHECK", "weekly physics chart check"
        PHYSICIAN_REVIEW = "PHYSICIAN_REVIEW", "physician weekly review"
        OVERRIDE_REVIEW = "OVERRIDE_REVIEW", "overrides to review"
        SESSION_REVIEW = "SESSION_REVIEW", "NOT_VERIFIED session to review"
        IMAGE_REVIEW = "IMAGE_REVIEW", "image to review"
        UNMATCHED_RECORD = "UNMATCHED_RECORD", "unmatched machine record"
        WORKITEM_REVIEW = "WORKITEM_REVIEW", "worklist step flagged for review"

    class Status(models.TextChoices):
        OPEN = "OPEN", "open"
        DONE = "DONE", "done"
        CANCELLED = "CANCELLED", "cancelled"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # One event never makes two tasks: "<kind>:<subject>[:<n>]" (rv.services.tasks).
    key = models.CharField(max_length=128, unique=True)
    title = models.CharField(max_length=200, help_text="what is to be done, for people")
    # The subject: the patient wherever known, and the object the work is about.
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="tasks")
    course = models.ForeignKey(Course, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="tasks")
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="tasks")
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="tasks")
    image = models.ForeignKey(RTImageLink, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="tasks")
    device_record = models.ForeignKey(DeviceRecord, null=True, blank=True,
                                      on_delete=models.PROTECT, related_name="tasks")
    workitem = models.ForeignKey(Workitem, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="tasks")
    fraction_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="the fraction count that called for it")
    due_date = models.DateField()
    # For a role (always), and for one person of it when assigned.
    assigned_role = models.CharField(max_length=32)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    # The audit event of what made it (a session recorded, an image linked ...).
    event = models.ForeignKey(AuditEvent, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="+")
    completed_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, help_text="the sign-off (or why cancelled)")
    # "task.complete" when signed off here; else the review that closed it
    # ("session.review", "rt_image.approve", "device_record.assign", "workitem.review" ...).
    closed_by_action = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [
            # "My tasks" and the menu's count: open tasks of a role / of a person, by due date.
            models.Index(fields=["assigned_role", "due_date"], condition=Q(status="OPEN"),
                         name="rv_task_open_role"),
            models.Index(fields=["assigned_to", "due_date"], condition=Q(status="OPEN"),
                         name="rv_task_open_user"),
            models.Index(fields=["status", "due_date"], name="rv_task_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title} (due {self.due_date})"

    def overdue(self, today: date) -> bool:
        return self.status == self.Status.OPEN and self.due_date < today
