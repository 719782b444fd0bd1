"""Filters shared by the web pages and the API (django-filter), so both filter alike."""

from __future__ import annotations

from django_filters import rest_framework as filters

from rv.models import AuditEvent


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
