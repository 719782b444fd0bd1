from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from dicom_net.exports import export_retry
from dicom_net.models import AssociationLog, CommitmentRequest, ExportJob, Node
from rv.errors import DomainError
from rv.roles import MANAGE_NODES, Action, can, may, require


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    # The permission matrix (rv.roles): only an admin manages DICOM nodes.
    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return may(request.user, MANAGE_NODES)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return may(request.user, MANAGE_NODES)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return may(request.user, MANAGE_NODES)

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return may(request.user, MANAGE_NODES)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return may(request.user, MANAGE_NODES)

    list_display = ["name", "ae_title", "host", "port", "can_store", "can_query",
                    "move_destination", "receives_exports", "commit_exports"]
    search_fields = ["name", "ae_title", "host"]


@admin.register(AssociationLog)
class AssociationLogAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return can(request.user, Action.MANAGE_NODES)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return can(request.user, Action.MANAGE_NODES)

    list_display = ["started_at", "calling_ae", "peer_host", "outcome", "stored", "duplicates",
                    "failed", "reason"]
    list_filter = ["outcome", "calling_ae"]
    readonly_fields = [f.name for f in AssociationLog._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "created_at", "node", "instance", "status", "commitment",
                    "attempts", "next_attempt_at", "sent_at", "committed_at", "last_error"]
    list_filter = ["status", "commitment", "node"]
    search_fields = ["instance__sop_instance_uid", "node__name", "last_error"]
    readonly_fields = [f.name for f in ExportJob._meta.fields]
    actions = ["retry"]

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return can(request.user, Action.EXPORT_READ)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return can(request.user, Action.EXPORT_READ)

    @admin.action(description="Send the selected exports again")
    def retry(self, request, queryset):  # type: ignore[no-untyped-def]
        try:
            require(request.user, Action.EXPORT_RETRY)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        done = 0
        for job in queryset:
            try:
                export_retry(job=job)
                done += 1
            except ValidationError as exc:
                self.message_user(request, exc.messages[0], messages.WARNING)
        self.message_user(request, f"{done} export(s) queued again")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(CommitmentRequest)
class CommitmentRequestAdmin(admin.ModelAdmin):
    """Storage Commitment requests, received and sent (DICOM plumbing: the admin's)."""

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return can(request.user, Action.MANAGE_NODES)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return can(request.user, Action.MANAGE_NODES)

    list_display = ["created_at", "direction", "peer_ae", "transaction_uid", "status",
                    "event_type", "attempts", "via", "reported_at", "last_error"]
    list_filter = ["direction", "status", "peer_ae"]
    search_fields = ["transaction_uid", "peer_ae", "last_error"]
    readonly_fields = [f.name for f in CommitmentRequest._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
