"""/api/v1/patients, /courses, /plans: read, filter, and the plan actions (approve ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv import errors
from rv.api.serializers import (
    CourseSerializer,
    PatientSerializer,
    PlanDetailSerializer,
    PlanSerializer,
)
from rv.models import Course, Patient, Plan
from rv.prescription_selectors import plan_prescription_check
from rv.roles import Action
from rv.selectors import patient_list, patient_name_q, plan_detail
from rv.services import plans as plan_services


def _call(fn: Callable[[], Any]) -> Any:
    """Run a service; its refusals become JSON errors with a message (403 or 409)."""
    try:
        return fn()
    except errors.PermissionDenied as exc:
        raise exceptions.PermissionDenied(exc.message) from exc
    except errors.ValidationError as exc:
        conflict = exceptions.APIException(exc.message)
        conflict.status_code = 409
        raise conflict from exc


class PatientFilter(filters.FilterSet):
    patient_id = filters.CharFilter()
    name = filters.CharFilter(method="by_name", help_text='words of the name, in any order '
                              'and spelling: "smith, j", "Smith John", "muller" (MÜLLER)')
    q = filters.CharFilter(method="by_search", help_text="name words or part of the ID, "
                           "as the patients page searches")

    class Meta:
        model = Patient
        fields = ["patient_id", "name", "q"]

    def by_name(self, queryset: Any, name: str, value: str) -> Any:
        q = patient_name_q(value)
        return queryset.filter(q) if q is not None else queryset

    def by_search(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(pk__in=patient_list(search=value).values("pk"))


class PatientViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access
    queryset = Patient.objects.order_by("patient_name", "patient_id")
    serializer_class = PatientSerializer
    filterset_class = PatientFilter


class CourseViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ
    queryset = Course.objects.order_by("patient", "created_at", "id")
    serializer_class = CourseSerializer
    filterset_fields = ["patient", "status", "code"]


class PlanFilter(filters.FilterSet):
    patient_id = filters.CharFilter(field_name="patient__patient_id")
    label = filters.CharFilter()
    status = filters.MultipleChoiceFilter(choices=Plan.Status.choices)

    class Meta:
        model = Plan
        fields = ["patient", "course", "patient_id", "label", "status", "kind",
                  "dicom_approval_status"]


ApproveRequest = inline_serializer("PlanApproveRequest", {
    "password": serializers.CharField(help_text="the approver's password, entered again")})
ReasonRequest = inline_serializer("PlanReasonRequest", {
    "reason": serializers.CharField(required=False, allow_blank=True)})
MoveRequest = inline_serializer("PlanMoveRequest", {"course": serializers.IntegerField()})
PrescriptionCheckOut = inline_serializer("PlanPrescriptionCheck", {
    "prescription": serializers.IntegerField(allow_null=True),
    "site": serializers.CharField(allow_null=True),
    "version": serializers.IntegerField(allow_null=True),
    "ok": serializers.BooleanField(help_text="approval would not be refused for it"),
    "partial": serializers.BooleanField(),
    "problem": serializers.CharField(help_text="why it cannot be checked at all"),
    "checks": inline_serializer("PlanPrescriptionCheckItem", {
        "what": serializers.CharField(), "prescribed": serializers.CharField(),
        "planned": serializers.CharField(), "ok": serializers.BooleanField(),
        "message": serializers.CharField()}, many=True)})


class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # the actions: their service requires more
    queryset = Plan.objects.select_related("course", "approved_by").prefetch_related(
        "fraction_groups").order_by("-created_at", "-id")
    filterset_class = PlanFilter
    ordering_fields = ["created_at", "label", "revision", "status"]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return PlanSerializer if self.action == "list" else PlanDetailSerializer

    def get_object(self) -> Plan:
        plan = super().get_object()
        return plan_detail(pk=plan.pk)

    def _done(self, plan: Plan) -> Response:
        return Response(PlanDetailSerializer(plan_detail(pk=plan.pk)).data)

    @extend_schema(request=ApproveRequest, responses=PlanDetailSerializer,
                   description="Approve for treatment (physicist or physician), signing "
                               "again with the password. 403: role or password; 409: the "
                               "plan's status or RT Plan Approval Status forbids it.")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        password = str(request.data.get("password", ""))
        return self._done(_call(lambda: plan_services.plan_approve(
            plan=plan, user=request.user, password=password)))

    @extend_schema(request=None, responses=PrescriptionCheckOut,
                   description="The plan against the physician's prescription covering it, "
                   "as approval checks it (issue 15): `prescription` null when its course "
                   "has none (approval then checks nothing of it).")
    @action(detail=True, methods=["get"], url_path="prescription-check")
    def prescription_check(self, request: Request, pk: str | None = None) -> Response:
        check = plan_prescription_check(plan=super().get_object())
        if check is None:
            return Response({"prescription": None, "site": None, "version": None, "ok": True,
                             "partial": False, "problem": "", "checks": []})
        return Response(check.as_dict())

    @extend_schema(request=ReasonRequest, responses=PlanDetailSerializer)
    @action(detail=True, methods=["post"])
    def hold(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        reason = str(request.data.get("reason", ""))
        return self._done(_call(lambda: plan_services.plan_hold(
            plan=plan, user=request.user, reason=reason)))

    @extend_schema(request=None, responses=PlanDetailSerializer)
    @action(detail=True, methods=["post"], url_path="release-hold")
    def release_hold(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        return self._done(_call(lambda: plan_services.plan_release_hold(
            plan=plan, user=request.user)))

    @extend_schema(request=ReasonRequest, responses=PlanDetailSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        reason = str(request.data.get("reason", ""))
        return self._done(_call(lambda: plan_services.plan_retire(
            plan=plan, user=request.user, reason=reason)))

    @extend_schema(request=None, responses=PlanDetailSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        return self._done(_call(lambda: plan_services.plan_complete(
            plan=plan, user=request.user)))

    @extend_schema(request=MoveRequest, responses=PlanDetailSerializer)
    @action(detail=True, methods=["post"], url_path="move")
    def move(self, request: Request, pk: str | None = None) -> Response:
        plan = super().get_object()
        checked = type(MoveRequest)(data=request.data)
        checked.is_valid(raise_exception=True)
        course = Course.objects.filter(pk=checked.validated_data["course"]).first()
        if course is None:
            raise exceptions.ValidationError({"course": "no such course"})
        return self._done(_call(lambda: plan_services.plan_move_to_course(
            plan=plan, user=request.user, course=course)))
