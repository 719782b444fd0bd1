"""Reads of the archive for the web UI and API (services write, selectors read)."""

from __future__ import annotations

from django.db.models import Count, Max, Q, QuerySet

from archive.models import Patient, Series, Study


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    qs = Patient.objects.annotate(
        study_count=Count("studies", distinct=True),
        series_count=Count("studies__series", distinct=True),
        instance_count=Count("studies__series__instances", distinct=True),
        last_received=Max("studies__series__instances__received_at"),
    )
    search = search.strip()
    if search:
        qs = qs.filter(Q(patient_id__icontains=search) | Q(patient_name__icontains=search))
    return qs.order_by("patient_name", "patient_id")


def study_list_for_patient(*, patient: Patient) -> QuerySet[Study]:
    return patient.studies.annotate(
        series_count=Count("series", distinct=True),
        instance_count=Count("series__instances", distinct=True),
    ).order_by("-study_date", "study_instance_uid")


def series_list_for_study(*, study: Study) -> QuerySet[Series]:
    # the study page lists each series' instances: fetched in one query, not one per series
    return study.series.annotate(instance_count=Count("instances")).prefetch_related(
        "instances").order_by("series_number", "series_instance_uid")
