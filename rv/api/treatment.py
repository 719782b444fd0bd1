"""/api/v1/sessions, /appointments, /audit-events: thin doors into the same services as the
console. A session blocked by verification answers 422 {"message", "violations"}; a
fraction recorded meanwhile 409; a role that may not 403."""

from __future__ import annotations

from datetime import date
from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv import errors
from rv.api.history import AuditCursorPagination, SessionCursorPagination
from rv.filters import AuditEventFilter, day_from, day_to
from rv.models import (
    Appointment,
    AuditEvent,
    BeamDelivery,
    ChannelDelivery,
    Override,
    Plan,
    Session,
    SessionDose,
    TerminationStatus,
    TreatmentMachine,
)
from rv.roles import Action
from rv.services import schedule as schedule_services
from rv.services.sessions import BeamInput, ChannelInput, OverrideInput, session_record

# --- output shapes -------------------------------------------------------------------------


class BeamDeliverySerializer(serializers.ModelSerializer):
    beam_number = serializers.IntegerField(source="beam.number", read_only=True)
    beam_name = serializers.CharField(source="beam.name", read_only=True)
    remaining_after = serializers.FloatField(read_only=True)

    class Meta:
        model = BeamDelivery
        fields = ["id", "beam", "beam_number", "beam_name", "specified_meterset",
                  "remaining_before", "delivered_meterset", "remaining_after", "unit",
                  "termination_status", "verification_status", "beam_dose", "delivered_dose",
                  "gantry_angle", "collimator_angle", "couch_angle", "table_top_vertical",
                  "table_top_longitudinal", "table_top_lateral", "tolerance_table"]


class ChannelDeliverySerializer(serializers.ModelSerializer):
    setup_number = serializers.IntegerField(source="setup.number", read_only=True)
    channel_number = serializers.IntegerField(source="channel.number", read_only=True)

    class Meta:
        model = ChannelDelivery
        fields = ["id", "setup_number", "channel_number", "specified_time", "remaining_before",
                  "delivered_time", "termination_status", "verification_status",
                  "interruptions", "setup_dose", "delivered_dose"]


class OverrideSerializer(serializers.ModelSerializer):
    authorised_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Override
        fields = ["id", "beam_delivery", "channel_delivery", "authorised_by", "reason", "rule",
                  "parameter", "planned", "actual", "tolerance", "message", "at"]


class SessionDoseSerializer(serializers.ModelSerializer):
    dose_reference_number = serializers.IntegerField(source="dose_reference.number",
                                                     read_only=True)

    class Meta:
        model = SessionDose
        fields = ["dose_reference", "dose_reference_number", "delivered_dose",
                  "cumulative_dose"]


class SessionSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    patient = serializers.IntegerField(source="plan.patient_id", read_only=True)
    beams = BeamDeliverySerializer(many=True, read_only=True)
    channels = ChannelDeliverySerializer(many=True, read_only=True)
    overrides = OverrideSerializer(many=True, read_only=True)
    doses = SessionDoseSerializer(many=True, read_only=True)

    class Meta:
        model = Session
        fields = ["id", "plan", "patient", "machine", "appointment", "fraction_number",
                  "continuation", "fraction_complete", "treated_at", "recorded_by",
                  "identity_confirmed", "verification_status", "content_origin",
                  "record_sop_instance_uid", "beams", "channels", "overrides", "doses"]


class AppointmentSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    patient = serializers.IntegerField(source="plan.patient_id", read_only=True)
    fractions_planned = serializers.IntegerField(source="plan.fractions_planned",
                                                 read_only=True)

    class Meta:
        model = Appointment
        fields = ["id", "plan", "patient", "machine", "fraction_number", "fractions_planned",
                  "date", "time", "status"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "user", "username", "action", "object_type", "object_id",
                  "details"]


# --- input shapes --------------------------------------------------------------------------


class BeamIn(serializers.Serializer):
    beam = serializers.IntegerField(help_text="Beam Number in the plan")
    delivered_meterset = serializers.FloatField()
    termination_status = serializers.ChoiceField(TerminationStatus.choices,
                                                 default=TerminationStatus.NORMAL)
    gantry_angle = serializers.FloatField(required=False, allow_null=True)
    collimator_angle = serializers.FloatField(required=False, allow_null=True)
    couch_angle = serializers.FloatField(required=False, allow_null=True)
    table_top_vertical = serializers.FloatField(required=False, allow_null=True)
    table_top_longitudinal = serializers.FloatField(required=False, allow_null=True)
    table_top_lateral = serializers.FloatField(required=False, allow_null=True)


class InterruptionIn(serializers.Serializer):
    after_seconds = serializers.FloatField(default=0.0)
    duration_seconds = serializers.FloatField(default=0.0)
    reason = serializers.CharField(allow_blank=True, default="", max_length=200)


class ChannelIn(serializers.Serializer):
    setup = serializers.IntegerField(help_text="Application Setup Number")
    channel = serializers.IntegerField(help_text="Channel Number")
    delivered_time = serializers.FloatField(help_text="seconds")
    termination_status = serializers.ChoiceField(TerminationStatus.choices,
                                                 default=TerminationStatus.NORMAL)
    interruptions = InterruptionIn(many=True, required=False)


class OverrideIn(serializers.Serializer):
    username = serializers.CharField(help_text="the authorising physicist or physician")
    password = serializers.CharField(help_text="their password, entered again")
    reason = serializers.CharField()
    violation_keys = serializers.ListField(
        child=serializers.CharField(), help_text="the `key` of each violation authorised, "
        "as a 422 answer listed them")


class SessionIn(serializers.Serializer):
    plan = serializers.IntegerField()
    machine = serializers.CharField(help_text="Treatment Machine Name")
    fraction_number = serializers.IntegerField(required=False, allow_null=True,
                                               help_text="default: the next one")
    appointment = serializers.IntegerField(required=False, allow_null=True)
    identity_confirmed = serializers.BooleanField()
    beams = BeamIn(many=True, required=False)
    channels = ChannelIn(many=True, required=False)
    override = OverrideIn(required=False, allow_null=True)


ViolationOut = inline_serializer("Violation", {
    "rule": serializers.CharField(), "parameter": serializers.CharField(),
    "planned": serializers.CharField(allow_null=True),
    "actual": serializers.CharField(allow_null=True),
    "tolerance": serializers.CharField(allow_null=True), "message": serializers.CharField(),
    "subject": serializers.CharField(), "key": serializers.CharField()}, many=True)
Blocked = inline_serializer("SessionBlocked", {"message": serializers.CharField(),
                                               "violations": ViolationOut})
Message = inline_serializer("ErrorMessage", {"message": serializers.CharField()})


def _conflict(message: str) -> exceptions.APIException:
    exc = exceptions.APIException(message)
    exc.status_code = status.HTTP_409_CONFLICT
    return exc


class SessionFilter(filters.FilterSet):
    patient = filters.NumberFilter(field_name="plan__patient")
    patient_id = filters.CharFilter(field_name="plan__patient__patient_id",
                                    help_text="Patient ID, exact")
    name = filters.CharFilter(field_name="plan__patient__patient_name", lookup_expr="icontains")
    course = filters.NumberFilter(field_name="plan__course")
    machine = filters.CharFilter(field_name="machine__name")
    therapist = filters.CharFilter(field_name="recorded_by__username")
    date_from = filters.DateFilter(field_name="treated_at", method=day_from,
                                   help_text="from this day on (YYYY-MM-DD)")
    date_to = filters.DateFilter(field_name="treated_at", method=day_to,
                                 help_text="up to and including this day")

    class Meta:
        model = Session
        fields = ["plan", "patient", "patient_id", "name", "course", "machine", "therapist",
                  "fraction_number", "verification_status", "date_from", "date_to"]


class SessionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access; recording: the service
    queryset = (Session.objects.select_related("machine", "recorded_by", "plan")
                .prefetch_related("beams__beam", "channels__setup", "channels__channel",
                                  "overrides__authorised_by", "doses__dose_reference")
                .order_by("-treated_at", "-id"))
    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    pagination_class = SessionCursorPagination
    ordering_fields = ["treated_at"]

    @extend_schema(request=SessionIn, responses={
        201: SessionSerializer, 400: Message, 403: Message, 409: Message,
        422: OpenApiResponse(Blocked, description="verification found violations that no "
                             "override covers; nothing was saved")},
        description="Record a treatment session (therapist), through the same service as "
                    "the console. To override, send again with `override` naming the "
                    "violations' keys, signed by a physicist or physician.")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data_in = SessionIn(data=request.data)
        data_in.is_valid(raise_exception=True)
        d: dict[str, Any] = data_in.validated_data
        plan = Plan.objects.filter(pk=d["plan"]).first()
        machine = TreatmentMachine.objects.filter(name=d["machine"]).first()
        if plan is None or machine is None:
            raise exceptions.ValidationError({"plan" if plan is None else "machine":
                                              "no such plan or machine"})
        beams = {b.number: b for b in plan.beams.select_related("machine", "tolerance_table")}
        channels = {(c.setup.number, c.number): c for s in plan.application_setups.all()
                    for c in s.channels.select_related("setup__machine")}
        try:
            b_in = [BeamInput(beam=beams[b.pop("beam")], **b) for b in d.get("beams", [])]
            c_in = [ChannelInput(channel=channels[(c.pop("setup"), c.pop("channel"))],
                                 interruptions=tuple(c.pop("interruptions", [])), **c)
                    for c in d.get("channels", [])]
        except KeyError as exc:
            raise exceptions.ValidationError(
                {"beams": f"no beam or channel {exc.args[0]} in this plan"}) from None
        o = d.get("override")
        override = OverrideInput(username=o["username"], password=o["password"],
                                 reason=o["reason"],
                                 violation_keys=tuple(o["violation_keys"])) if o else None
        appointment = Appointment.objects.filter(pk=d.get("appointment") or 0).first()
        try:
            session = session_record(
                plan=plan, machine=machine, fraction_number=d.get("fraction_number"),
                beams=b_in, channels=c_in, recorded_by=request.user,
                identity_confirmed=d["identity_confirmed"], override=override,
                appointment=appointment)
        except errors.VerificationFailed as exc:
            return Response({"message": exc.message, "violations": [
                {**x.as_dict(), "key": x.key()} for x in exc.violations]},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        except errors.Conflict as exc:
            raise _conflict(exc.message) from exc
        except errors.ValidationError as exc:
            raise exceptions.ValidationError({"detail": exc.message}) from exc
        return Response(SessionSerializer(self.get_queryset().get(pk=session.pk)).data,
                        status=status.HTTP_201_CREATED)


ScheduleIn = inline_serializer("ScheduleRequest", {
    "plan": serializers.IntegerField(), "machine": serializers.CharField(),
    "start": serializers.DateField(),
    "count": serializers.IntegerField(required=False, allow_null=True),
    "weekdays": serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6),
                                      required=False, help_text="Monday 0; default Mon-Fri")})


MoveIn = inline_serializer("AppointmentMoveRequest", {"date": serializers.DateField()})
CancelIn = inline_serializer("AppointmentCancelRequest", {
    "reason": serializers.CharField(required=False, allow_blank=True)})


class AppointmentViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # scheduling: the service
    queryset = Appointment.objects.select_related("machine", "plan").prefetch_related(
        "plan__fraction_groups").order_by("date", "time", "id")
    serializer_class = AppointmentSerializer
    filterset_fields = {"plan": ["exact"], "machine__name": ["exact"], "date": ["exact", "gte",
                        "lte"], "status": ["exact"]}

    @extend_schema(request=ScheduleIn, responses={201: AppointmentSerializer(many=True),
                                                  403: Message, 409: Message})
    @action(detail=False, methods=["post"])
    def schedule(self, request: Request) -> Response:
        checked = type(ScheduleIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        data = checked.validated_data
        plan = Plan.objects.filter(pk=data["plan"]).first()
        machine = TreatmentMachine.objects.filter(name=data.get("machine", "")).first()
        if plan is None or machine is None:
            raise exceptions.ValidationError({"plan": "no such plan or machine"})
        try:
            start = data["start"]
            made = schedule_services.appointments_schedule(
                plan=plan, machine=machine, start=start, user=request.user,
                count=data.get("count"), weekdays=tuple(data.get("weekdays") or (0, 1, 2, 3, 4)))
        except ValueError:
            raise exceptions.ValidationError({"start": "a date, YYYY-MM-DD"}) from None
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        except errors.DomainError as exc:
            raise _conflict(exc.message) from exc
        return Response(AppointmentSerializer(made, many=True).data,
                        status=status.HTTP_201_CREATED)


    def _change(self, call: Any) -> Response:
        try:
            appointment = call()
        except ValueError:
            raise exceptions.ValidationError({"date": "a date, YYYY-MM-DD"}) from None
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        except errors.DomainError as exc:
            raise _conflict(exc.message) from exc
        return Response(AppointmentSerializer(appointment).data)

    @extend_schema(request=MoveIn, responses={200: AppointmentSerializer, 403: Message,
                                              409: Message})
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        appointment = self.get_object()
        return self._change(lambda: schedule_services.appointment_move(
            appointment=appointment, user=request.user,
            to=date.fromisoformat(str(request.data.get("date", "")))))

    @extend_schema(request=CancelIn, responses={200: AppointmentSerializer, 403: Message,
                                                409: Message})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        appointment = self.get_object()
        return self._change(lambda: schedule_services.appointment_cancel(
            appointment=appointment, user=request.user,
            reason=str(request.data.get("reason", ""))))


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.order_by("-at", "-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    required_action = Action.AUDIT_READ
    pagination_class = AuditCursorPagination
    ordering_fields = ["at"]
