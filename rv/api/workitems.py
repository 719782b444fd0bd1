"""/api/v1/workitems: the TDW-II worklist (rv.models.Workitem) as the clinic reads it, and a
physicist's review and release of a step: thin doors into rv.services.workitems. Never the
step's Transaction UID (PS3.4 CC.1.1.1: the performer's and Verity's secret) nor its DICOM
attribute set (the device reads that over DICOM). Domain errors map to statuses in
rv.api_errors: a role or a signature refused 403, a step in the wrong state 400."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv.filters import day_from, day_to
from rv.models import Workitem
from rv.roles import Action
from rv.services.workitems import workitem_release, workitem_review
from rv.worklist_selectors import workitems

W = Workitem


class WorkitemProgressSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """What the device last reported (RO-62): null fields until it does."""

    percent = serializers.FloatField(source="progress_percent", allow_null=True,
                                     read_only=True)
    beam = serializers.IntegerField(source="progress_beam", allow_null=True, read_only=True,
                                    help_text="Referenced Beam Number being delivered")
    description = serializers.CharField(source="progress_description", read_only=True)
    at = serializers.DateTimeField(source="progress_at", allow_null=True, read_only=True)


class WorkitemSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    plan_label = serializers.CharField(source="plan.label", read_only=True)
    plan_revision = serializers.IntegerField(source="plan.revision", read_only=True)
    patient = serializers.IntegerField(source="plan.patient_id", read_only=True)
    patient_id = serializers.CharField(source="plan.patient.patient_id", read_only=True)
    patient_name = serializers.CharField(source="plan.patient.patient_name", read_only=True)
    readiness_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    review_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    progress = WorkitemProgressSerializer(source="*", read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    replaces = serializers.SlugRelatedField(
        slug_field="sop_instance_uid", read_only=True, allow_null=True,
        help_text="SOP Instance UID of the step this one replaces or continues")
    instruction = serializers.SlugRelatedField(
        slug_field="sop_instance_uid", read_only=True, allow_null=True,
        help_text="SOP Instance UID of the RT Beams Delivery Instruction")
    flagged = serializers.BooleanField(read_only=True,
                                       help_text="waits on a physicist's review")

    class Meta:
        model = Workitem
        fields = ["id", "sop_instance_uid", "state", "readiness", "readiness_reasons",
                  "machine", "plan", "plan_label", "plan_revision", "patient", "patient_id",
                  "patient_name", "appointment", "fraction_number", "delivery_type",
                  "scheduled_start", "performer_ae", "claimed_at", "finished_at", "progress",
                  "review_reasons", "reviewed_by", "reviewed_at", "review_comment",
                  "cancel_reason", "replaces", "instruction", "flagged"]
        read_only_fields = fields


def _machine(qs: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
    """The machine by name, or by database id (a name of digits matches either)."""
    match = Q(machine__name=value)
    if value.isdigit():
        match |= Q(machine_id=int(value))
    return qs.filter(match)


def _day(qs: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
    return day_to(day_from(qs, name, value), name, value)


def _flagged(qs: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
    waiting = ~Q(review_reasons=[]) & Q(reviewed_at__isnull=True)
    return qs.filter(waiting) if value else qs.exclude(waiting)


class WorkitemFilter(filters.FilterSet):
    machine = filters.CharFilter(method=_machine,
                                 help_text="Treatment Machine Name, exact, or its id")
    state = filters.MultipleChoiceFilter(choices=W.State.choices,
                                         help_text="Procedure Step State; repeat for several")
    readiness = filters.ChoiceFilter(choices=W.Readiness.choices)
    date = filters.DateFilter(field_name="scheduled_start", method=_day,
                              help_text="scheduled on this local day (YYYY-MM-DD)")
    date_from = filters.DateFilter(field_name="scheduled_start", method=day_from,
                                   help_text="scheduled from this day on (YYYY-MM-DD)")
    date_to = filters.DateFilter(field_name="scheduled_start", method=day_to,
                                 help_text="scheduled up to and including this day")
    plan = filters.NumberFilter(field_name="plan", help_text="plan revision (database id)")
    patient = filters.NumberFilter(field_name="plan__patient",
                                   help_text="rv patient (database id)")
    patient_id = filters.CharFilter(field_name="plan__patient__patient_id",
                                    help_text="Patient ID, exact")
    flagged = filters.BooleanFilter(method=_flagged,
                                    help_text="true: waits on a physicist's review")

    class Meta:
        model = Workitem
        fields = ["machine", "state", "readiness", "date", "date_from", "date_to", "plan",
                  "patient", "patient_id", "fraction_number", "delivery_type", "flagged"]


Message = inline_serializer("WorkitemErrorMessage", {"message": serializers.CharField()})
ReviewIn = inline_serializer("WorkitemReviewRequest", {
    "password": serializers.CharField(help_text="the reviewer's own password (signature)"),
    "comment": serializers.CharField(help_text="what the reviewer concluded")})
ReleaseIn = inline_serializer("WorkitemReleaseRequest", {
    "password": serializers.CharField(help_text="the physicist's own password (signature)"),
    "reason": serializers.CharField(help_text="why the device's claim is stale")})


class WorkitemViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access; review, release: the service
    queryset = workitems()
    serializer_class = WorkitemSerializer
    filterset_class = WorkitemFilter
    ordering_fields = ["scheduled_start"]

    def _answer(self, wi: Workitem) -> Response:
        return Response(WorkitemSerializer(self.get_queryset().get(pk=wi.pk)).data)

    @extend_schema(request=ReviewIn, responses={200: WorkitemSerializer, 400: Message,
                                                403: Message},
                   description="A physicist or physician reviews what a step flagged (an "
                   "interrupted fraction before its continuation becomes READY; records "
                   "that did not add up), signing with their password. A wrong password "
                   "is 403 (and audited); a step that flagged nothing, or was reviewed "
                   "already, 400.")
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        checked = type(ReviewIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        wi = workitem_review(workitem=self.get_object(), user=request.user,
                             password=checked.validated_data["password"],
                             comment=checked.validated_data["comment"])
        return self._answer(wi)

    @extend_schema(request=ReleaseIn, responses={200: WorkitemSerializer, 400: Message,
                                                 403: Message},
                   description="A physicist releases a stale IN PROGRESS step (the device "
                   "crashed or went away), signing with their password: Verity cancels it "
                   "with the reason, which frees the fraction for the console, and issues a "
                   "new step where the fraction is still due. A step not IN PROGRESS is 400.")
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        checked = type(ReleaseIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        wi = workitem_release(workitem=self.get_object(), user=request.user,
                              password=checked.validated_data["password"],
                              reason=checked.validated_data["reason"])
        return self._answer(wi)
