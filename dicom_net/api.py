"""/api/v1/exports/: the export queue, read and filter (with each job's Storage Commitment
state); POST .../{id}/retry/ sends a job again (admins and physicists). /api/v1/nodes/: the
DICOM peers; every role reads them, admins add, change and remove them (rv.roles
MANAGE_NODES). /api/v1/commitments/: Storage Commitment requests received and sent, read by
admins (MANAGE_NODES, as the association log)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from dicom_net.exports import export_retry
from dicom_net.models import CommitmentRequest, ExportJob, Node
from dicom_net.services import node_add, node_remove, node_update
from rv import errors
from rv.roles import Action, require


class ExportJobSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True)
    sop_instance_uid = serializers.CharField(source="instance.sop_instance_uid",
                                             read_only=True)
    sop_class_uid = serializers.CharField(source="instance.sop_class_uid", read_only=True)
    commitment_transaction_uid = serializers.CharField(
        source="commitment_request.transaction_uid", read_only=True, default=None)

    class Meta:
        model = ExportJob
        fields = ["id", "node", "node_name", "instance", "sop_instance_uid", "sop_class_uid",
                  "status", "attempts", "next_attempt_at", "last_error", "created_at",
                  "updated_at", "sent_at", "commitment", "commit_attempts",
                  "commitment_request", "commitment_transaction_uid", "committed_at"]
        read_only_fields = fields


class ExportJobViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.EXPORT_READ  # rv.api.access
    queryset = ExportJob.objects.select_related(
        "node", "instance", "commitment_request").order_by("-created_at", "-id")
    serializer_class = ExportJobSerializer
    filterset_fields = ["status", "node", "instance", "commitment"]
    ordering_fields = ["created_at", "next_attempt_at", "status", "attempts"]

    @extend_schema(request=None, responses=ExportJobSerializer,
                   description="Queue the job again from its first attempt. 403: not an "
                               "admin or physicist; 409: the job is already queued.")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        try:
            require(request.user, Action.EXPORT_RETRY)
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        job = self.get_object()
        try:
            job = export_retry(job=job)
        except ValidationError as exc:
            conflict = exceptions.APIException(exc.messages[0])
            conflict.status_code = 409
            raise conflict from exc
        return Response(ExportJobSerializer(job).data)


class NodeSerializer(serializers.ModelSerializer):
    roles = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Node
        fields = ["id", "name", "ae_title", "host", "port", "can_store", "can_query",
                  "move_destination", "receives_exports", "commit_exports", "description",
                  "roles", "created_at"]
        read_only_fields = ["id", "roles", "created_at"]


class NodeUpdateSerializer(NodeSerializer):
    class Meta(NodeSerializer.Meta):
        read_only_fields = ["id", "name", "roles", "created_at"]


def _invalid(exc: ValidationError) -> exceptions.ValidationError:
    return exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict")
                                      else {"detail": exc.messages[0]})


class NodeViewSet(viewsets.ModelViewSet):
    queryset = Node.objects.order_by("name")
    serializer_class = NodeSerializer

    def required_action_for(self, request: Request) -> Action:  # rv.api.access
        return Action.NODE_READ if request.method in permissions.SAFE_METHODS \
            else Action.MANAGE_NODES
    filterset_fields = ["name", "ae_title", "can_store", "can_query", "move_destination",
                        "receives_exports", "commit_exports"]
    ordering_fields = ["name", "ae_title", "created_at"]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return NodeUpdateSerializer if self.action in ("update", "partial_update") \
            else NodeSerializer

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        try:
            serializer.instance = node_add(**serializer.validated_data)
        except ValidationError as exc:
            raise _invalid(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        try:
            serializer.instance = node_update(node=serializer.instance,
                                              **serializer.validated_data)
        except ValidationError as exc:
            raise _invalid(exc) from exc

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        node = self.get_object()
        try:
            node_remove(name=node.name)
        except ValidationError as exc:
            conflict = exceptions.APIException(exc.messages[0])
            conflict.status_code = status.HTTP_409_CONFLICT
            raise conflict from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommitmentRequestSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True, default=None)

    class Meta:
        model = CommitmentRequest
        fields = ["id", "direction", "transaction_uid", "node", "node_name", "peer_ae",
                  "status", "references", "committed", "failed", "event_type", "duplicate",
                  "attempts", "next_attempt_at", "via", "last_error", "created_at",
                  "updated_at", "reported_at"]
        read_only_fields = fields


class CommitmentRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Storage Commitment (PS3.4 Annex J): the requests peers made of Verity (received: the
    report Verity made, `committed` and `failed` with each Failure Reason) and those Verity
    made of the nodes that commit its exports (sent: the node's verdict)."""

    required_action = Action.MANAGE_NODES  # rv.api.access: admins
    queryset = CommitmentRequest.objects.select_related("node").order_by("-created_at", "-id")
    serializer_class = CommitmentRequestSerializer
    filterset_fields = ["direction", "status", "node", "peer_ae", "transaction_uid"]
    ordering_fields = ["created_at", "status", "reported_at"]


router = SimpleRouter()  # rv.api.urls owns the API root view
router.register("exports", ExportJobViewSet, basename="export")
router.register("nodes", NodeViewSet, basename="node")
router.register("commitments", CommitmentRequestViewSet, basename="commitment")
urlpatterns = [path("", include(router.urls))]
