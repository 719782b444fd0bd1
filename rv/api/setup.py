"""/api/v1/setup-checks (before beam-on), /machines and /machine-groups (a physicist's
meterset policy and beam-matched machines): thin doors into the same services as the
console. Domain errors map to statuses in rv.api_errors: a hard stop or a violation no
override covers is 422 {"message", "violations", "hard_stop"}."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv.api.treat_inputs import SetupCheckIn, validated
from rv.models import MachineGroup, Override, SetupClearance, TreatmentMachine
from rv.roles import Action
from rv.services.machines import (
    machine_group_save,
    machine_meterset_policy_set,
    machine_prescription_tolerance_set,
)
from rv.services.setup_check import OverrideInput, setup_check

Message = inline_serializer("SetupErrorMessage", {"message": serializers.CharField()})
Blocked = inline_serializer("SetupBlocked", {
    "message": serializers.CharField(), "hard_stop": serializers.BooleanField(),
    "violations": inline_serializer("SetupViolation", {
        "rule": serializers.CharField(), "parameter": serializers.CharField(),
        "planned": serializers.CharField(allow_null=True),
        "actual": serializers.CharField(allow_null=True),
        "tolerance": serializers.CharField(allow_null=True),
        "message": serializers.CharField(), "subject": serializers.CharField(),
        "hard": serializers.BooleanField(), "key": serializers.CharField(),
        "override_action": serializers.CharField(
            allow_null=True, help_text="what the override's signer must also be allowed "
            "(rv.roles Action; 'prescribe': a physician)")}, many=True)})


class ClearanceOverrideSerializer(serializers.ModelSerializer):
    authorised_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Override
        fields = ["id", "authorised_by", "reason", "rule", "subject", "parameter", "planned",
                  "actual", "tolerance", "message", "at"]


class SetupClearanceSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    checked_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    overrides = ClearanceOverrideSerializer(many=True, read_only=True)
    session = serializers.SerializerMethodField()

    class Meta:
        model = SetupClearance
        fields = ["id", "plan", "machine", "appointment", "fraction_number", "continuation",
                  "checked_by", "checked_at", "identity_confirmed", "status", "checked",
                  "overrides", "date_reason", "session", "warnings"]

    def get_session(self, obj: SetupClearance) -> int | None:
        session = getattr(obj, "session", None)
        return session.pk if session is not None else None


class SetupCheckViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access; the check itself: the service
    queryset = (SetupClearance.objects.select_related("machine", "checked_by", "session")
                .prefetch_related("overrides__authorised_by").order_by("-checked_at", "-id"))
    serializer_class = SetupClearanceSerializer
    filterset_fields = ["plan", "appointment", "fraction_number", "status"]

    @extend_schema(request=SetupCheckIn, responses={
        201: SetupClearanceSerializer, 400: Message, 403: Message, 409: Message,
        422: OpenApiResponse(Blocked, description="a hard stop (no override exists) or "
                             "violations no override covers; nothing was saved")},
        description="Check the set-up before beam-on (therapist). Overridable violations "
                    "come back as 422 with their keys: send again with `override` naming "
                    "them, signed by a physicist or physician. A hard stop cannot be "
                    "overridden.")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        d, req = validated(SetupCheckIn, request.data)
        o = d.get("override")
        override = OverrideInput(username=o["username"], password=o["password"],
                                 reason=o["reason"],
                                 violation_keys=tuple(o["violation_keys"])) if o else None
        clearance = setup_check(request=req, checked_by=request.user, override=override,
                                date_reason=d.get("date_reason", ""))
        return Response(SetupClearanceSerializer(self.get_queryset().get(pk=clearance.pk)).data,
                        status=status.HTTP_201_CREATED)


class MachineSerializer(serializers.ModelSerializer):
    groups = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = TreatmentMachine
        fields = ["id", "name", "manufacturer", "model_name", "meterset_tolerance_mu",
                  "meterset_tolerance_percent", "prescription_tolerance_percent",
                  "tdw_delivery", "groups"]
        read_only_fields = ["tdw_delivery", "prescription_tolerance_percent"]


PolicyIn = inline_serializer("MetersetPolicyRequest", {
    "meterset_tolerance_mu": serializers.FloatField(allow_null=True, min_value=0),
    "meterset_tolerance_percent": serializers.FloatField(allow_null=True, min_value=0,
                                                         max_value=100)})


RxToleranceIn = inline_serializer("PrescriptionToleranceRequest", {
    "prescription_tolerance_percent": serializers.FloatField(
        allow_null=True, min_value=0, max_value=50,
        help_text="null: RV_PRESCRIPTION_TOLERANCE_PERCENT")})


class MachineViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # the policy: the service (physicist)
    queryset = TreatmentMachine.objects.prefetch_related("groups").order_by("name")
    serializer_class = MachineSerializer

    @extend_schema(request=PolicyIn, responses={200: MachineSerializer, 400: Message,
                                                403: Message},
                   description="A physicist sets the meterset tolerance that applies where "
                   "a beam's tolerance table gives none (both given: the larger).")
    @action(detail=True, methods=["post"], url_path="meterset-policy")
    def meterset_policy(self, request: Request, pk: str | None = None) -> Response:
        checked = type(PolicyIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        machine = machine_meterset_policy_set(
            machine=self.get_object(), user=request.user,
            absolute=checked.validated_data["meterset_tolerance_mu"],
            percent=checked.validated_data["meterset_tolerance_percent"])
        return Response(MachineSerializer(machine).data)

    @extend_schema(request=RxToleranceIn, responses={200: MachineSerializer, 400: Message,
                                                     403: Message},
                   description="A physicist sets how far a plan's dose per fraction may be "
                   "from its prescription's at approval, for plans on this machine.")
    @action(detail=True, methods=["post"], url_path="prescription-tolerance")
    def prescription_tolerance(self, request: Request, pk: str | None = None) -> Response:
        checked = type(RxToleranceIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        machine = machine_prescription_tolerance_set(
            machine=self.get_object(), user=request.user,
            percent=checked.validated_data["prescription_tolerance_percent"])
        return Response(MachineSerializer(machine).data)


class MachineGroupSerializer(serializers.ModelSerializer):
    machines = serializers.SlugRelatedField(slug_field="name", many=True,
                                            queryset=TreatmentMachine.objects.all())
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MachineGroup
        fields = ["id", "name", "machines", "created_by", "created_at"]


class MachineGroupViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # declaring a group: the service (physicist)
    queryset = MachineGroup.objects.prefetch_related("machines").order_by("name")
    serializer_class = MachineGroupSerializer

    @extend_schema(request=MachineGroupSerializer, responses={201: MachineGroupSerializer,
                                                              400: Message, 403: Message},
                   description="A physicist declares machines beam-matched (a plan for one "
                   "may be treated on another), or changes a group's members.")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data_in = MachineGroupSerializer(data=request.data)
        data_in.is_valid(raise_exception=True)
        group = machine_group_save(name=data_in.validated_data["name"],
                                   machines=list(data_in.validated_data["machines"]),
                                   user=request.user)
        return Response(MachineGroupSerializer(group).data, status=status.HTTP_201_CREATED)
