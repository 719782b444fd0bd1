"""/api/v1/prescriptions (issue 15): a physician's prescriptions, read by any clinician;
written, signed, amended and linked to plans by a physician: thin doors into
rv.services.prescriptions. Domain errors map to statuses in rv.api_errors: a role or a
signature refused 403, input or a state that forbids it 400."""

from __future__ import annotations

from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv.models import Course, Plan, Prescription, PrescriptionReference
from rv.prescription_selectors import covered_plans
from rv.roles import Action
from rv.services.prescriptions import (
    PrescriptionInput,
    prescription_amend,
    prescription_create,
    prescription_plan_link,
    prescription_sign,
    reference_inputs,
)

Message = inline_serializer("PrescriptionErrorMessage", {"message": serializers.CharField()})


class ReferencePointSerializer(serializers.ModelSerializer):
    class Meta:
        model = PrescriptionReference
        fields = ["name", "primary", "session_limit", "daily_limit", "total_limit"]


class PrescriptionSerializer(serializers.ModelSerializer):
    course_code = serializers.CharField(source="course.code", read_only=True)
    patient = serializers.IntegerField(source="course.patient_id", read_only=True)
    references = ReferencePointSerializer(many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    signed_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                             allow_null=True)
    plans = serializers.SerializerMethodField(
        help_text="plan revisions (database ids) the prescription covers")

    class Meta:
        model = Prescription
        fields = ["id", "course", "course_code", "patient", "site", "version",
                  "previous_version", "status", "technique", "modality", "energy",
                  "dose_per_fraction", "fractions", "total_dose", "fractionation",
                  "fractionation_note", "notes", "references", "amendment_reason",
                  "created_by", "created_at", "signed_by", "signed_at", "plans"]
        read_only_fields = fields

    def get_plans(self, obj: Prescription) -> list[int]:
        if obj.status == Prescription.Status.SUPERSEDED:
            return []
        return [p.pk for p in covered_plans(prescription=obj)]


class ReferencePointIn(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=64)
    primary = serializers.BooleanField(default=False)
    session_limit = serializers.FloatField(required=False, allow_null=True,
                                           help_text="Gy in one session")
    daily_limit = serializers.FloatField(required=False, allow_null=True,
                                         help_text="Gy in one day")
    total_limit = serializers.FloatField(
        required=False, allow_null=True,
        help_text="Gy over every plan of the prescription (primary: the total dose if none)")


class PrescriptionIn(serializers.Serializer):  # type: ignore[type-arg]
    site = serializers.CharField(max_length=64)
    dose_per_fraction = serializers.FloatField(help_text="Gy to the primary reference point")
    fractions = serializers.IntegerField()
    total_dose = serializers.FloatField(required=False, allow_null=True,
                                        help_text="Gy; dose per fraction x fractions if none")
    technique = serializers.CharField(required=False, allow_blank=True, default="")
    modality = serializers.ChoiceField(choices=Prescription.Modality.choices, required=False,
                                       allow_blank=True, default="")
    energy = serializers.FloatField(required=False, allow_null=True,
                                    help_text="nominal energy (MV, MeV), checked at approval")
    fractionation = serializers.ChoiceField(
        choices=Prescription.Fractionation.choices,
        default=Prescription.Fractionation.DAILY_WEEKDAYS)
    fractionation_note = serializers.CharField(required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    references = ReferencePointIn(many=True)


class CreateIn(PrescriptionIn):
    course = serializers.IntegerField(help_text="the course (database id)")


class AmendIn(PrescriptionIn):
    password = serializers.CharField(help_text="the physician's password, signing again")
    reason = serializers.CharField(help_text="why the prescription is amended")


SignIn = inline_serializer("PrescriptionSignRequest", {
    "password": serializers.CharField(help_text="the physician's password, signing again")})
LinkIn = inline_serializer("PrescriptionLinkRequest", {
    "plan": serializers.IntegerField(help_text="a plan revision of the course (database id)"),
    "partial": serializers.BooleanField(
        default=False, help_text="one of several sequential or boost plans of the "
        "prescription: its fractions with theirs make up the prescribed ones")})


def _input(d: dict[str, Any]) -> PrescriptionInput:
    return PrescriptionInput(
        site=d["site"], dose_per_fraction=d["dose_per_fraction"], fractions=d["fractions"],
        total_dose=d.get("total_dose"), technique=d.get("technique", ""),
        modality=d.get("modality", ""), energy=d.get("energy"),
        fractionation=d["fractionation"], fractionation_note=d.get("fractionation_note", ""),
        notes=d.get("notes", ""), references=reference_inputs(list(d["references"])))


def _checked(shape: type[serializers.Serializer], data: Any  # type: ignore[type-arg]
             ) -> dict[str, Any]:
    checked = shape(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


class PrescriptionFilter(filters.FilterSet):
    patient = filters.NumberFilter(field_name="course__patient",
                                   help_text="rv patient (database id)")
    current = filters.BooleanFilter(method="_current",
                                    help_text="true: the current version of each site only")

    class Meta:
        model = Prescription
        fields = ["course", "patient", "site", "status", "current"]

    def _current(self, qs: Any, name: str, value: bool) -> Any:
        return qs.exclude(status=Prescription.Status.SUPERSEDED) if value else qs


class PrescriptionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access; the writes: the service
    queryset = (Prescription.objects.select_related("course", "created_by", "signed_by")
                .prefetch_related("references").order_by("course", "site", "-version"))
    serializer_class = PrescriptionSerializer
    filterset_class = PrescriptionFilter

    def _answer(self, rx: Prescription, code: int = status.HTTP_200_OK) -> Response:
        return Response(PrescriptionSerializer(self.get_queryset().get(pk=rx.pk)).data,
                        status=code)

    @extend_schema(request=CreateIn, responses={201: PrescriptionSerializer, 400: Message,
                                                403: Message},
                   description="A physician writes a prescription for a site of a course: "
                   "a DRAFT until signed. Exactly one reference point is primary.")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        d = _checked(CreateIn, request.data)
        course = Course.objects.filter(pk=d["course"]).first()
        if course is None:
            raise exceptions.ValidationError({"course": "no such course"})
        rx = prescription_create(course=course, user=request.user, data=_input(d))
        return self._answer(rx, status.HTTP_201_CREATED)

    @extend_schema(request=SignIn, responses={200: PrescriptionSerializer, 400: Message,
                                              403: Message},
                   description="The physician signs a draft with their password again. A "
                   "refused signature is 403 and audited.")
    @action(detail=True, methods=["post"])
    def sign(self, request: Request, pk: str | None = None) -> Response:
        d = _checked(type(SignIn), request.data)
        rx = prescription_sign(prescription=self.get_object(), user=request.user,
                               password=d["password"])
        return self._answer(rx)

    @extend_schema(request=AmendIn, responses={200: PrescriptionSerializer, 400: Message,
                                               403: Message},
                   description="The physician amends the prescription, signing again: a new "
                   "signed version (returned); the one before is kept, SUPERSEDED.")
    @action(detail=True, methods=["post"])
    def amend(self, request: Request, pk: str | None = None) -> Response:
        d = _checked(AmendIn, request.data)
        rx = prescription_amend(prescription=self.get_object(), user=request.user,
                                password=d["password"], data=_input(d), reason=d["reason"])
        return self._answer(rx)

    @extend_schema(request=LinkIn, responses={200: PrescriptionSerializer, 400: Message,
                                              403: Message},
                   description="A physician links a plan (and its later revisions) to this "
                   "site's prescription; needed where the course has several sites.")
    @action(detail=True, methods=["post"])
    def link(self, request: Request, pk: str | None = None) -> Response:
        d = _checked(type(LinkIn), request.data)
        plan = Plan.objects.filter(pk=d["plan"]).first()
        if plan is None:
            raise exceptions.ValidationError({"plan": "no such plan"})
        rx = self.get_object()
        prescription_plan_link(prescription=rx, plan=plan, user=request.user,
                               partial=d["partial"])
        return self._answer(rx)
