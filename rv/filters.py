"""Filters shared by the web pages and the API (django-filter), so both filter alike."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet
from django.forms import DateInput
from django.utils import timezone
from django_filters import rest_framework as filters

from rv.models import (
    Appointment,
    AuditEvent,
    BeamDelivery,
    TerminationStatus,
    VerificationStatus,
)


class AuditEventFilter(filters.FilterSet):
    user = filters.CharFilter(field_name="username", lookup_expr="iexact",
                              help_text="user name, exact (case-insensitive)")
    action = filters.CharFilter(field_name="action", lookup_expr="istartswith",
                                help_text="e.g. session.record, or session. for all of them")
    object_type = filters.CharFilter(field_name="object_type", lookup_expr="iexact",
                                     help_text="app_label.model, e.g. rv.session")
    object_id = filters.CharFilter(field_name="object_id")
    date_from = filters.DateFilter(field_name="at", lookup_expr="date__gte",
                                   help_text="from this day on (YYYY-MM-DD)")
    date_to = filters.DateFilter(field_name="at", lookup_expr="date__lte",
                                 help_text="up to and including this day (YYYY-MM-DD)")

    class Meta:
        model = AuditEvent
        fields = ["user", "action", "object_type", "object_id", "date_from", "date_to"]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.get_current_timezone())


def day_from(qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
    """`name` >= the local day's start: a range on the column, so its index serves."""
    return qs.filter(**{f"{name}__gte": _day_start(value)})


def day_to(qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
    """`name` < the next local day's start (the day included)."""
    return qs.filter(**{f"{name}__lt": _day_start(value + timedelta(days=1))})


class HistoryFilter(filters.FilterSet):
    """The history's filters (rv.history): one row per delivered beam. Dates are local days;
    the range is turned into bounds on the indexed Session.treated_at. Each has a label for
    people (the page's form); `patient`, `course` and `plan` take database ids (links and
    the API) and are not shown on the page (HIDDEN_ON_PAGE)."""

    patient = filters.NumberFilter(field_name="session__plan__patient", label="Patient record",
                                   help_text="rv patient (database id)")
    patient_id = filters.CharFilter(field_name="session__plan__patient__patient_id",
                                    label="Patient ID", help_text="Patient ID, exact")
    name = filters.CharFilter(field_name="session__plan__patient__patient_name",
                              lookup_expr="icontains", label="Name",
                              help_text="part of the patient's name")
    course = filters.NumberFilter(field_name="session__plan__course", label="Course record")
    plan = filters.NumberFilter(field_name="session__plan", label="Plan record")
    machine = filters.CharFilter(field_name="session__machine__name", label="Machine",
                                 help_text="Treatment Machine Name, exact")
    date_from = filters.DateFilter(field_name="session__treated_at", method=day_from,
                                   label="From", widget=DateInput(attrs={"type": "date"}),
                                   help_text="from this day on (YYYY-MM-DD)")
    date_to = filters.DateFilter(field_name="session__treated_at", method=day_to,
                                 label="To", widget=DateInput(attrs={"type": "date"}),
                                 help_text="up to and including this day")
    verification_status = filters.ChoiceFilter(choices=VerificationStatus.choices,
                                               label="Verification")
    termination_status = filters.ChoiceFilter(choices=TerminationStatus.choices,
                                              label="Termination",
                                              help_text="Treatment Termination Status")
    therapist = filters.CharFilter(field_name="session__recorded_by__username",
                                   label="Therapist",
                                   help_text="user name of who recorded the session")

    class Meta:
        model = BeamDelivery
        fields = ["patient", "patient_id", "name", "course", "plan", "machine", "date_from",
                  "date_to", "verification_status", "termination_status", "therapist"]


HIDDEN_ON_PAGE = ("patient", "course", "plan")


class AppointmentFilter(filters.FilterSet):
    """The schedule's filters (/api/v1/appointments/)."""

    machine = filters.CharFilter(field_name="machine__name", label="Machine",
                                 help_text="Treatment Machine Name, exact")
    date = filters.DateFilter(field_name="date", label="Day")
    date_from = filters.DateFilter(field_name="date", lookup_expr="gte", label="From",
                                   help_text="from this day on (YYYY-MM-DD)")
    date_to = filters.DateFilter(field_name="date", lookup_expr="lte", label="To",
                                 help_text="up to and including this day")
    activity = filters.ChoiceFilter(choices=Appointment.Activity.choices, label="Activity")
    status = filters.ChoiceFilter(choices=Appointment.Status.choices, label="Status")
    plan = filters.NumberFilter(field_name="plan", label="Plan")
    patient = filters.NumberFilter(field_name="plan__patient", label="Patient",
                                   help_text="rv patient (database id)")
    # The names the API had before: kept.
    machine__name = filters.CharFilter(field_name="machine__name", label="Machine name")
    date__gte = filters.DateFilter(field_name="date", lookup_expr="gte", label="From day")
    date__lte = filters.DateFilter(field_name="date", lookup_expr="lte", label="To day")

    class Meta:
        model = Appointment
        fields = ["machine", "date", "date_from", "date_to", "activity", "status", "plan",
                  "patient", "machine__name", "date__gte", "date__lte"]
