from django.contrib import admin

from dicom_net.models import AssociationLog, Node
from rv.roles import MANAGE_NODES, may


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
                    "move_destination", "receives_exports"]
    search_fields = ["name", "ae_title", "host"]


@admin.register(AssociationLog)
class AssociationLogAdmin(admin.ModelAdmin):
    list_display = ["started_at", "calling_ae", "peer_host", "outcome", "stored", "duplicates",
                    "failed", "reason"]
    list_filter = ["outcome", "calling_ae"]
    readonly_fields = [f.name for f in AssociationLog._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
