"""/api/v1/ups-subscriptions/ and /api/v1/ups-events/: who is subscribed to the worklist's
steps (UPS Watch) and the N-EVENT-REPORTs queued for them (UPS Event), read only, for admins
and physicists (rv.roles UPS_EVENTS_READ). Subscriptions change over DICOM only (N-ACTION
3/4/5, rv.services.ups_events)."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from rv.models import UpsEvent, UpsSubscription
from rv.roles import Action


class UpsSubscriptionSerializer(serializers.ModelSerializer):
    workitem = serializers.SlugRelatedField(
        slug_field="sop_instance_uid", read_only=True, allow_null=True,
        help_text="SOP Instance UID of the step; null for a global subscription")
    filter = serializers.JSONField(read_only=True,
                                   help_text="filtered global: the Matching Keys, DICOM JSON")

    class Meta:
        model = UpsSubscription
        fields = ["id", "ae_title", "kind", "workitem", "deletion_lock", "filter",
                  "suspended", "suspended_at", "requested_by", "created_at", "updated_at"]
        read_only_fields = fields


class UpsSubscriptionViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.UPS_EVENTS_READ  # rv.api.access
    queryset = UpsSubscription.objects.select_related("workitem").order_by("ae_title", "id")
    serializer_class = UpsSubscriptionSerializer
    filterset_fields = ["ae_title", "kind", "suspended", "deletion_lock"]
    ordering_fields = ["ae_title", "created_at"]


class UpsEventSerializer(serializers.ModelSerializer):
    event_type_name = serializers.CharField(source="get_event_type_display", read_only=True)
    event_info = serializers.JSONField(read_only=True,
                                       help_text="the Event Information, DICOM JSON")

    class Meta:
        model = UpsEvent
        fields = ["id", "ae_title", "workitem_uid", "event_type", "event_type_name",
                  "event_info", "status", "attempts", "next_attempt_at", "last_error",
                  "created_at", "sent_at"]
        read_only_fields = fields


class UpsEventViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.UPS_EVENTS_READ  # rv.api.access
    queryset = UpsEvent.objects.order_by("-created_at", "-id")
    serializer_class = UpsEventSerializer
    filterset_fields = ["ae_title", "status", "event_type", "workitem_uid"]
    ordering_fields = ["created_at", "next_attempt_at", "status", "attempts"]
