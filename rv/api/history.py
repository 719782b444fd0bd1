"""/api/v1/history/ (one row per delivered beam, keyset pages), /api/v1/history/csv/ (the
same rows streamed as CSV) and /api/v1/records/ (treatment records in the archive)."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    RTBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage,
    RTIonBeamsTreatmentRecordStorage,
    RTTreatmentSummaryRecordStorage,
)
from rest_framework import exceptions, generics, serializers, viewsets
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

import archive.models as am
from rv.filters import HistoryFilter
from rv.history import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    Cursor,
    Page,
    history_csv,
    history_deliveries,
    history_page,
)
from rv.models import Session, VerificationStatus
from rv.roles import Action


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pages for the big lists (sessions, audit events): stable under inserts and as
    fast deep as near the top. `ordering` is set per view."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class SessionCursorPagination(NewestFirstCursorPagination):
    ordering = ("-treated_at", "-id")


class AuditCursorPagination(NewestFirstCursorPagination):
    ordering = ("-at", "-id")


class HistoryRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the beam delivery")
    treated_at = serializers.DateTimeField()
    session = serializers.IntegerField()
    patient = serializers.IntegerField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    course = serializers.IntegerField()
    course_code = serializers.CharField()
    plan = serializers.IntegerField()
    plan_label = serializers.CharField()
    fraction_number = serializers.IntegerField()
    machine = serializers.CharField()
    beam_number = serializers.IntegerField()
    beam_name = serializers.CharField()
    specified_meterset = serializers.FloatField()
    delivered_meterset = serializers.FloatField()
    unit = serializers.CharField()
    termination_status = serializers.CharField()
    verification_status = serializers.ChoiceField(VerificationStatus.choices)
    override = serializers.CharField(allow_null=True, help_text="the override's reason")
    override_by = serializers.CharField(allow_null=True)
    therapist = serializers.CharField()


class HistoryPagination(BasePagination):
    """Keyset pages of rv.history: {"next", "previous", "results"}, cursors opaque."""

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        text = request.query_params.get("cursor")
        try:
            cursor = Cursor.decode(text) if text else None
        except ValueError as exc:
            raise exceptions.ValidationError({"cursor": str(exc)}) from None
        try:
            size = int(request.query_params.get("page_size") or PAGE_SIZE)
        except ValueError:
            raise exceptions.ValidationError({"page_size": "a whole number"}) from None
        self.request = request
        self.page: Page = history_page(qs=queryset, cursor=cursor, size=size)
        return self.page.rows

    def _link(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        query = self.request.query_params.copy()
        query["cursor"] = cursor.encode()
        return self.request.build_absolute_uri(f"{self.request.path}?{query.urlencode()}")

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self._link(self.page.next),
                         "previous": self._link(self.page.previous), "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {"type": "object", "required": ["results"],
                "properties": {"next": link, "previous": link, "results": schema}}

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [{"name": "cursor", "in": "query", "required": False,
                 "schema": {"type": "string"}, "description": "from a page's next/previous"},
                {"name": "page_size", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}]


class HistoryView(generics.ListAPIView):
    """Treatment history: one row per delivered beam, newest first (admins, physicists,
    physicians). Filters combine; pages are cursor pages."""

    required_action = Action.HISTORY_READ  # rv.api.access
    serializer_class = HistoryRowSerializer
    pagination_class = HistoryPagination
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = HistoryFilter

    def get_queryset(self) -> QuerySet[Any]:
        return history_deliveries()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The rows are plain values from rv.history already; HistoryRowSerializer describes
        # them for the schema (schemathesis checks that they conform).
        rows = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(rows)


class HistoryCsvView(generics.GenericAPIView):
    required_action = Action.HISTORY_READ
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = HistoryFilter
    pagination_class = None

    def get_queryset(self) -> QuerySet[Any]:
        return history_deliveries()

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
                   description="The history rows with the same filters, as CSV (streamed; "
                               "columns as in /api/v1/history/).")
    def get(self, request: Request) -> StreamingHttpResponse:
        return csv_response(history_csv(qs=self.filter_queryset(self.get_queryset())))


def csv_response(lines: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="treatment-history.csv"'
    return response


# --- records ----------------------------------------------------------------------------

RECORD_CLASSES = {
    "beams": RTBeamsTreatmentRecordStorage,
    "brachy": RTBrachyTreatmentRecordStorage,
    "ion": RTIonBeamsTreatmentRecordStorage,
    "summary": RTTreatmentSummaryRecordStorage,
}
_KIND_OF = {uid: kind for kind, uid in RECORD_CLASSES.items()}


class RecordSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    patient_id = serializers.CharField(source="series.study.patient.patient_id")
    patient_name = serializers.CharField(source="series.study.patient.patient_name")
    study_instance_uid = serializers.CharField(source="series.study.study_instance_uid")
    session = serializers.IntegerField(allow_null=True, read_only=True,
                                       help_text="the session it records, where known")
    plan = serializers.IntegerField(allow_null=True, read_only=True,
                                    help_text="that session's plan, where known")

    class Meta:
        model = am.Instance
        fields = ["id", "sop_instance_uid", "sop_class_uid", "kind", "patient_id",
                  "patient_name", "study_instance_uid", "content_date", "received_at", "size",
                  "source", "session", "plan"]

    def get_kind(self, instance: am.Instance) -> str:
        return _KIND_OF.get(instance.sop_class_uid, "")


class RecordFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=[(k, k) for k in RECORD_CLASSES], method="_kind")
    patient_id = filters.CharFilter(field_name="series__study__patient__patient_id")
    sop_instance_uid = filters.CharFilter()
    received_from = filters.DateFilter(field_name="received_at", lookup_expr="date__gte")
    received_to = filters.DateFilter(field_name="received_at", lookup_expr="date__lte")

    class Meta:
        model = am.Instance
        fields = ["kind", "patient_id", "sop_instance_uid", "received_from", "received_to"]

    def _kind(self, qs: QuerySet[am.Instance], name: str, value: str) -> QuerySet[am.Instance]:
        return qs.filter(sop_class_uid=RECORD_CLASSES[value])


@extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
class RecordViewSet(viewsets.ReadOnlyModelViewSet):
    """RT Beams / Brachy / Ion Beams Treatment Records and RT Treatment Summary Records held
    in the archive, with the session and plan they record where Verity made them."""

    required_action = Action.CLINICAL_READ
    serializer_class = RecordSerializer
    filterset_class = RecordFilter
    ordering_fields = ["received_at", "content_date"]

    def get_queryset(self) -> QuerySet[am.Instance]:
        session = Session.objects.filter(record_sop_instance_uid=OuterRef("sop_instance_uid"))
        return (am.Instance.objects.filter(sop_class_uid__in=RECORD_CLASSES.values())
                .select_related("series__study__patient")
                .annotate(session=Subquery(session.values("id")[:1]),
                          plan=Subquery(session.values("plan_id")[:1]))
                .order_by("-received_at", "-id"))
