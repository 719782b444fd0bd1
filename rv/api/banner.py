"""/api/v1/patients/{id}/ with what the banner shows (display name, age, alerts, set-up
notes, photo), and the doors to write it: POST .../photo/ (multipart), POST .../alerts/,
PUT .../setup-notes/, POST /api/v1/patient-alerts/{id}/retire/. Reads need CLINICAL_READ;
each write is checked again by its service (rv.services.banner), and bad input answers
400 {"message"} (rv.api_errors)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from rv.api.parsers import ObjectJSONParser
from rv.api.plans import PatientViewSet as PatientReadViewSet
from rv.api.serializers import PatientSerializer
from rv.banner_selectors import active_alerts, current_photo
from rv.models import Course, Patient, PatientAlert, PatientPhoto, SetupNote
from rv.names import age_text
from rv.roles import Action
from rv.services import banner as banner_services

# --- output shapes -------------------------------------------------------------------------


class PatientAlertSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    retired_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PatientAlert
        fields = ["id", "patient", "kind", "kind_display", "text", "created_by", "created_at",
                  "retired_by", "retired_at", "retired_reason"]


class SetupNoteSerializer(serializers.ModelSerializer):
    course_code = serializers.CharField(source="course.code", read_only=True, default=None)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SetupNote
        fields = ["id", "course", "course_code", "notes", "accessories", "updated_by",
                  "updated_at"]


class PhotoSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PatientPhoto
        fields = ["id", "url", "content_type", "width", "height", "sha256", "uploaded_format",
                  "uploaded_size", "uploaded_by", "uploaded_at"]

    def get_url(self, photo: PatientPhoto) -> str:
        return reverse("rv-patient-photo", args=[photo.patient_id, photo.pk])


class PatientDetailSerializer(PatientSerializer):
    age = serializers.SerializerMethodField(help_text='"76 y", "18 mo", "12 d"; "" unknown')
    alerts = serializers.SerializerMethodField(help_text="the active alerts")
    setup_notes = serializers.SerializerMethodField(
        help_text="the patient's set-up notes and accessories, and each course's")
    photo = serializers.SerializerMethodField(help_text="the current photo, or null")

    class Meta(PatientSerializer.Meta):
        fields = [*PatientSerializer.Meta.fields, "age", "alerts", "setup_notes", "photo"]

    def get_age(self, patient: Patient) -> str:
        return age_text(patient.birth_date, timezone.localdate())

    @extend_schema_field(PatientAlertSerializer(many=True))
    def get_alerts(self, patient: Patient) -> list[dict[str, Any]]:
        alerts = active_alerts(patient_ids=[patient.pk]).get(patient.pk, [])
        return list(PatientAlertSerializer(alerts, many=True).data)

    @extend_schema_field(SetupNoteSerializer(many=True))
    def get_setup_notes(self, patient: Patient) -> list[dict[str, Any]]:
        notes = (SetupNote.objects.filter(patient=patient)
                 .select_related("course", "updated_by").order_by("course_id", "id"))
        return list(SetupNoteSerializer(notes, many=True).data)

    @extend_schema_field(PhotoSerializer(allow_null=True))
    def get_photo(self, patient: Patient) -> dict[str, Any] | None:
        ref = current_photo(patient_id=patient.pk)
        if ref is None:
            return None
        photo = (PatientPhoto.objects.defer("image", "thumbnail").select_related("uploaded_by")
                 .get(pk=ref.pk))
        return dict(PhotoSerializer(photo).data)


# --- input shapes --------------------------------------------------------------------------

AlertIn = inline_serializer("PatientAlertRequest", {
    "kind": serializers.ChoiceField(choices=PatientAlert.Kind.choices),
    "text": serializers.CharField(required=False, allow_blank=True, default="")})
RetireIn = inline_serializer("PatientAlertRetireRequest", {
    "reason": serializers.CharField(help_text="why the alert no longer holds")})
SetupNoteIn = inline_serializer("SetupNoteRequest", {
    "course": serializers.IntegerField(required=False, allow_null=True, default=None,
                                       help_text="a course of this patient; none: the "
                                                 "patient's own notes"),
    "notes": serializers.CharField(required=False, allow_blank=True, default=""),
    "accessories": serializers.ListField(child=serializers.CharField(allow_blank=True),
                                         required=False, default=list)})
PhotoIn = inline_serializer("PatientPhotoRequest", {
    "photo": serializers.FileField(help_text="JPEG or PNG (multipart/form-data)")})


def _checked(shape: serializers.Serializer, data: Any) -> dict[str, Any]:
    checked = type(shape)(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


class PatientViewSet(PatientReadViewSet):
    """The patients, with the banner's facts on one patient's detail."""

    parser_classes = [ObjectJSONParser, FormParser, MultiPartParser]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return PatientSerializer if self.action == "list" else PatientDetailSerializer

    def _detail(self, patient: Patient, code: int = status.HTTP_200_OK) -> Response:
        return Response(PatientDetailSerializer(patient).data, status=code)

    @extend_schema(request={"multipart/form-data": PhotoIn}, responses={201: PhotoSerializer},
                   description="Upload the patient's photo (therapist, physicist, physician). "
                               "400: not a JPEG or PNG, too large, too many pixels, broken.")
    @action(detail=True, methods=["post"])
    def photo(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        upload = request.FILES.get("photo")
        if upload is None:
            raise exceptions.ValidationError({"photo": "Attach the photo as a file."})
        # at most one byte past the cap: enough for the service to refuse it as too large
        data = upload.read(settings.RV_PHOTO_MAX_BYTES + 1)
        photo = banner_services.patient_photo_upload(patient=patient, data=data,
                                                     user=request.user)
        return Response(PhotoSerializer(photo).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AlertIn, responses={201: PatientAlertSerializer},
                   description="Set an alert (therapist, physicist, physician).")
    @action(detail=True, methods=["post"])
    def alerts(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        data = _checked(AlertIn, request.data)
        alert = banner_services.patient_alert_add(patient=patient, kind=data["kind"],
                                                  text=data["text"], user=request.user)
        return Response(PatientAlertSerializer(alert).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SetupNoteIn, responses=SetupNoteSerializer,
                   description="Write the set-up notes and accessories of the patient, or "
                               "of one of their courses (therapist, physicist).")
    @action(detail=True, methods=["put"], url_path="setup-notes")
    def setup_notes(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        data = _checked(SetupNoteIn, request.data)
        course = None
        if data["course"] is not None:
            course = Course.objects.filter(pk=data["course"], patient=patient).first()
            if course is None:
                raise exceptions.ValidationError({"course": "no such course of this patient"})
        note = banner_services.setup_note_set(
            patient=patient, course=course, notes=data["notes"],
            accessories=data["accessories"], user=request.user)
        return Response(SetupNoteSerializer(note).data)


class PatientAlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          viewsets.GenericViewSet):
    """Alerts, retired ones too (?patient=, ?active=true)."""

    required_action = Action.CLINICAL_READ  # retire: its service requires more
    queryset = PatientAlert.objects.select_related("created_by", "retired_by") \
        .order_by("patient", "created_at", "id")
    serializer_class = PatientAlertSerializer
    filterset_fields = ["patient", "kind"]

    def get_queryset(self) -> Any:
        qs = super().get_queryset()
        active = self.request.query_params.get("active", "").lower()
        if active in ("true", "1", "yes"):
            qs = qs.filter(retired_at__isnull=True)
        return qs

    @extend_schema(request=RetireIn, responses=PatientAlertSerializer,
                   description="Retire an alert that no longer holds (therapist, "
                               "physicist, physician), with the reason.")
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str | None = None) -> Response:
        alert = self.get_object()
        data = _checked(RetireIn, request.data)
        done = banner_services.patient_alert_retire(alert=alert, reason=data["reason"],
                                                    user=request.user)
        return Response(PatientAlertSerializer(done).data)
