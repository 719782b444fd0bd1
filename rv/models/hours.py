"""A treatment machine's opening hours: per weekday, when it opens and closes, the length of
a slot and how many patients it takes at once (rv.services.schedule checks appointments
against them; a machine with no hours at all is not checked)."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from rv.models.machine import TreatmentMachine

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class MachineHours(models.Model):
    """One weekday's hours of a machine; a weekday without a row is a closed day."""

    machine = models.ForeignKey(TreatmentMachine, on_delete=models.CASCADE,
                                related_name="hours")
    weekday = models.PositiveSmallIntegerField(help_text="Monday 0 .. Sunday 6")
    opens = models.TimeField()
    closes = models.TimeField()
    slot_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="the length of a slot, and of an appointment by default")
    capacity = models.PositiveSmallIntegerField(
        default=1, help_text="appointments at the same time (a linac: one patient)")

    class Meta:
        ordering = ["machine__name", "weekday"]
        constraints = [
            models.UniqueConstraint(fields=["machine", "weekday"],
                                    name="rv_machine_hours_one_per_weekday"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="rv_machine_hours_weekday"),
            models.CheckConstraint(condition=Q(opens__lt=F("closes")),
                                   name="rv_machine_hours_opens_before_closes"),
            models.CheckConstraint(condition=Q(slot_minutes__gt=0) & Q(capacity__gt=0),
                                   name="rv_machine_hours_positive"),
        ]

    def __str__(self) -> str:
        return (f"{self.machine} {WEEKDAY_NAMES[self.weekday]} {self.opens:%H:%M}-"
                f"{self.closes:%H:%M}")
