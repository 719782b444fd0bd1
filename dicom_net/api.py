"""/api/v1/exports/: the export queue, read and filter; POST .../{id}/retry/ sends a job
again (admins and physicists)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from dicom_net.exports import export_retry
from dicom_net.models import ExportJob
from rv.roles import ADMIN, PHYSICIST, has_role


class ExportJobSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True)
    sop_instance_uid = serializers.CharField(source="instance.sop_instance_uid",
                                             read_only=True)
    sop_class_uid = serializers.CharField(source="instance.sop_class_uid", read_only=True)

    class Meta:
        model = ExportJob
        fields = ["id", "node", "node_name", "instance", "sop_instance_uid", "sop_class_uid",
                  "status", "attempts", "next_attempt_at", "last_error", "created_at",
                  "updated_at", "sent_at"]
        read_only_fields = fields


class ExportJobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ExportJob.objects.select_related("node", "instance").order_by("-created_at",
                                                                             "-id")
    serializer_class = ExportJobSerializer
    filterset_fields = ["status", "node", "instance"]
    ordering_fields = ["created_at", "next_attempt_at", "status", "attempts"]

    @extend_schema(request=None, responses=ExportJobSerializer,
                   description="Queue the job again from its first attempt. 403: not an "
                               "admin or physicist; 409: the job is already queued.")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        if not has_role(request.user, ADMIN, PHYSICIST):
            raise exceptions.PermissionDenied("only admins and physicists may re-send exports")
        job = self.get_object()
        try:
            job = export_retry(job=job)
        except ValidationError as exc:
            conflict = exceptions.APIException(exc.messages[0])
            conflict.status_code = 409
            raise conflict from exc
        return Response(ExportJobSerializer(job).data)


router = SimpleRouter()  # rv.api.urls owns the API root view
router.register("exports", ExportJobViewSet, basename="export")
urlpatterns = [path("", include(router.urls))]
