"""/api/v1/sessions, /appointments, /audit-events: thin doors into the same services as the
console. A session blocked by verification answers 422 {"message", "violations"}; a
fraction recorded meanwhile 409; a role that may not 403."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv import errors
from rv.api.history import AuditCursorPagination, SessionCursorPagination
from rv.api.treat_inputs import SessionIn, validated
from rv.filters import AppointmentFilter, AuditEventFilter, day_from, day_to
from rv.models import (
    Appointment,
    AuditEvent,
    BeamDelivery,
    ChannelDelivery,
    Override,
    Plan,
    Session,
    SessionDose,
    TreatmentMachine,
)
from rv.roles import Action
from rv.services import schedule as schedule_services
from rv.services.sessions import session_record, session_review

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
        fields = ["id", "beam_delivery", "channel_delivery", "clearance", "authorised_by",
                  "reason", "rule", "subject", "parameter", "planned", "actual", "tolerance",
                  "message", "at"]


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
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
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
                  "record_sop_instance_uid", "clearance", "findings", "reviewed_by",
                  "reviewed_at", "review_comment", "beams", "channels", "overrides", "doses"]


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$",
                      "example": "08:30:00"})
class ClockTimeField(serializers.TimeField):
    """A time of day on the clinic's clock, "HH:MM:SS": no UTC offset, so not what JSON
    Schema's "time" format (RFC 3339 full-time, with an offset) describes."""


class AppointmentSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    time = ClockTimeField(allow_null=True, required=False)
    patient = serializers.IntegerField(source="plan.patient_id", read_only=True)
    fractions_planned = serializers.IntegerField(source="plan.fractions_planned",
                                                 read_only=True)

    class Meta:
        model = Appointment
        fields = ["id", "plan", "patient", "machine", "activity", "fraction_number",
                  "fractions_planned", "date", "time", "duration_minutes", "pattern", "note",
                  "status"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "user", "username", "action", "object_type", "object_id",
                  "details"]


Message = inline_serializer("ErrorMessage", {"message": serializers.CharField()})
ReviewIn = inline_serializer("SessionReviewRequest", {
    "password": serializers.CharField(), "comment": serializers.CharField()})


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
    required_action = Action.CLINICAL_READ  # rv.api.access; recording, review: the service
    queryset = (Session.objects.select_related("machine", "recorded_by", "plan")
                .prefetch_related("beams__beam", "channels__setup", "channels__channel",
                                  "overrides__authorised_by", "doses__dose_reference")
                .order_by("-treated_at", "-id"))
    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    pagination_class = SessionCursorPagination
    ordering_fields = ["treated_at"]

    @extend_schema(request=SessionIn, responses={
        201: SessionSerializer, 400: Message, 403: Message, 409: Message},
        description="Record what was delivered after beam-on (therapist), through the same "
                    "service as the console: stored as delivered, always. Give the set-up "
                    "check's `clearance`; without one (downtime) the session is NOT_VERIFIED. "
                    "Differences from the plan beyond tolerance flag it NOT_VERIFIED for a "
                    "physicist's review. Input that cannot be a delivery is 400.")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        d, req = validated(SessionIn, request.data)
        session = session_record(request=req, recorded_by=request.user,
                                 clearance=d.get("clearance"),
                                 date_reason=d.get("date_reason", ""))
        return Response(SessionSerializer(self.get_queryset().get(pk=session.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=ReviewIn, responses={200: SessionSerializer, 400: Message,
                                                403: Message, 409: Message},
                   description="A physicist or physician reviews a NOT_VERIFIED session, "
                   "signing with their password.")
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        checked = type(ReviewIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        session = session_review(session=self.get_object(), user=request.user,
                                 password=checked.validated_data["password"],
                                 comment=checked.validated_data["comment"])
        return Response(SessionSerializer(self.get_queryset().get(pk=session.pk)).data)


ScheduleIn = inline_serializer("ScheduleRequest", {
    "plan": serializers.IntegerField(), "machine": serializers.CharField(),
    "start": serializers.DateField(),
    "count": serializers.IntegerField(required=False, allow_null=True),
    "weekdays": serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6),
                                      required=False, help_text="Monday 0; default Mon-Fri"),
    "time": serializers.TimeField(required=False, allow_null=True,
                                  help_text="HH:MM; default: each day's first free slot"),
    "duration": serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                         help_text="minutes; default: the machine's slot")})
MoveIn = inline_serializer("AppointmentMoveRequest", {
    "date": serializers.DateField(),
    "time": serializers.TimeField(required=False, allow_null=True,
                                  help_text="HH:MM; default: the same time if free, else "
                                  "the day's first free slot"),
    "machine": serializers.CharField(required=False, help_text="another machine, by name"),
    "duration": serializers.IntegerField(required=False, allow_null=True, min_value=1)})
CancelIn = inline_serializer("AppointmentCancelRequest", {
    "reason": serializers.CharField(required=False, allow_blank=True)})
SwapIn = inline_serializer("AppointmentSwapRequest", {
    "first": serializers.IntegerField(), "second": serializers.IntegerField()})
MissedIn = inline_serializer("AppointmentMissedRequest", {
    "reason": serializers.CharField(required=False, allow_blank=True)})
BookIn = inline_serializer("AppointmentBookRequest", {
    "plan": serializers.IntegerField(), "machine": serializers.CharField(),
    "date": serializers.DateField(),
    "activity": serializers.ChoiceField(choices=Appointment.Activity.choices[1:]),
    "time": serializers.TimeField(required=False, allow_null=True),
    "duration": serializers.IntegerField(required=False, allow_null=True, min_value=1),
    "note": serializers.CharField(required=False, allow_blank=True, max_length=200)})
Refused = inline_serializer("ScheduleRefused", {
    "message": serializers.CharField(),
    "next_free": serializers.DateTimeField(allow_null=True,
                                           help_text="the next free slot, local time")})


def _data(shape: Any, data: Any) -> dict[str, Any]:
    checked = type(shape)(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


def _machine(name: str) -> TreatmentMachine:
    machine = TreatmentMachine.objects.filter(name=name).first()
    if machine is None:
        raise exceptions.ValidationError({"machine": f"no machine {name!r}"})
    return machine


class AppointmentViewSet(viewsets.ReadOnlyModelViewSet):
    """The schedule: filter by machine (name) and day (`date`, `date_from`, `date_to`),
    activity, status, plan or patient; ordered by day and time."""

    required_action = Action.CLINICAL_READ  # scheduling: the service
    queryset = Appointment.objects.select_related("machine", "plan").prefetch_related(
        "plan__fraction_groups").order_by("date", F("time").asc(nulls_last=True),
                                          "created_at", "id")
    serializer_class = AppointmentSerializer
    filterset_class = AppointmentFilter

    def _call(self, call: Any, many: bool = False, created: bool = False) -> Response:
        """Run a schedule service: its refusals are 409 {"message"} (403 for a role), a
        full or closed slot with `next_free`."""
        try:
            result = call()
        except errors.ScheduleRefused as exc:
            free = exc.next_free
            return Response({"message": exc.message,
                             "next_free": free.isoformat(timespec="minutes") if free else None},
                            status=status.HTTP_409_CONFLICT)
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        except errors.DomainError as exc:
            raise _conflict(exc.message) from exc
        return Response(AppointmentSerializer(result, many=many).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=ScheduleIn, responses={201: AppointmentSerializer(many=True),
                                                  403: Message, 409: Refused},
                   description="Schedule an approved plan's fractions on a machine, one per "
                   "chosen weekday from `start`, at `time` (default: each day's first free "
                   "slot) for `duration` minutes (default: the machine's slot). Outside the "
                   "machine's hours or over its capacity: 409 with the next free slot.")
    @action(detail=False, methods=["post"])
    def schedule(self, request: Request) -> Response:
        data = _data(ScheduleIn, request.data)
        plan = Plan.objects.filter(pk=data["plan"]).first()
        machine = TreatmentMachine.objects.filter(name=data.get("machine", "")).first()
        if plan is None or machine is None:
            raise exceptions.ValidationError({"plan": "no such plan or machine"})
        return self._call(lambda: schedule_services.appointments_schedule(
            plan=plan, machine=machine, start=data["start"], user=request.user,
            count=data.get("count"), weekdays=tuple(data.get("weekdays") or (0, 1, 2, 3, 4)),
            at=data.get("time"), duration=data.get("duration")), many=True, created=True)

    @extend_schema(request=BookIn, responses={201: AppointmentSerializer, 400: Message,
                                              403: Message, 409: Refused},
                   description="Book an appointment that is no fraction: imaging, a new "
                   "start, a physics check or a review visit.")
    @action(detail=False, methods=["post"])
    def book(self, request: Request) -> Response:
        data = _data(BookIn, request.data)
        plan = Plan.objects.filter(pk=data["plan"]).first()
        if plan is None:
            raise exceptions.ValidationError({"plan": "no such plan"})
        machine = _machine(data["machine"])
        return self._call(lambda: schedule_services.appointment_book(
            plan=plan, machine=machine, day=data["date"], at=data.get("time"),
            duration=data.get("duration"), activity=data["activity"],
            note=data.get("note", ""), user=request.user), created=True)

    @extend_schema(request=MoveIn, responses={200: AppointmentSerializer, 403: Message,
                                              409: Refused},
                   description="Move an open appointment to a day (and time, machine, "
                   "duration). Fractions are renumbered to stay in time order.")
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        appointment = self.get_object()
        data = _data(MoveIn, request.data)
        machine = _machine(data["machine"]) if data.get("machine") else None
        return self._call(lambda: schedule_services.appointment_move(
            appointment=appointment, user=request.user, to=data["date"], at=data.get("time"),
            machine=machine, duration=data.get("duration")))

    @extend_schema(request=SwapIn, responses={200: AppointmentSerializer(many=True),
                                              403: Message, 409: Refused},
                   description="Two scheduled appointments exchange machine, day and time.")
    @action(detail=False, methods=["post"])
    def swap(self, request: Request) -> Response:
        data = _data(SwapIn, request.data)
        rows = Appointment.objects.in_bulk([data["first"], data["second"]])
        if len(rows) != 2 or data["first"] == data["second"]:
            raise exceptions.ValidationError({"first": "two different appointments"})
        return self._call(lambda: schedule_services.appointment_swap(
            first=rows[data["first"]], second=rows[data["second"]], user=request.user),
            many=True)

    @extend_schema(request=MissedIn, responses={201: AppointmentSerializer, 403: Message,
                                                409: Refused},
                   description="The fraction of this appointment was missed: it is marked "
                   "MISSED and a fraction is added at the next free slot after the course's "
                   "last appointment (answered: the added appointment).")
    @action(detail=True, methods=["post"], url_path="add-missed")
    def add_missed(self, request: Request, pk: str | None = None) -> Response:
        appointment = self.get_object()
        data = _data(MissedIn, request.data)
        return self._call(lambda: schedule_services.appointment_add_missed(
            plan=appointment.plan, missed=appointment, user=request.user,
            reason=data.get("reason", "")), created=True)

    @extend_schema(request=CancelIn, responses={200: AppointmentSerializer, 403: Message,
                                                409: Message})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        appointment = self.get_object()
        return self._call(lambda: schedule_services.appointment_cancel(
            appointment=appointment, user=request.user,
            reason=str(request.data.get("reason", ""))))


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.order_by("-at", "-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    required_action = Action.AUDIT_READ
    pagination_class = AuditCursorPagination
    ordering_fields = ["at"]
