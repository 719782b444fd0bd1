"""Django admin for rv: clinical data is read-only here (it changes only through services);
tolerance tables are saved through their service functions, so versioning and audit hold.
What the admin site shows is the permission matrix's too (rv.roles): a superuser without a
clinical role sees no patient data here either (the archive's pages are gated below)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User as AuthUser
from django.db import transaction
from django.http import HttpRequest
from knox.models import AuthToken as KnoxAuthToken

import archive.admin as archive_admin
import archive.models as am
from rv.errors import DomainError
from rv.models import (
    Appointment,
    AuditEvent,
    Course,
    Patient,
    Plan,
    Session,
    ToleranceTable,
    TreatmentMachine,
    UpsEvent,
    UpsSubscription,
)
from rv.models.machine import TOLERANCE_FIELDS
from rv.roles import MANAGE_USERS, Action, can, may, roles_of
from rv.services.tolerance import tolerance_table_create, tolerance_table_update
from rv.services.users import user_admin_password_changed, user_admin_saved


class Gated:
    """Admin pages shown only to those the matrix lets read them (rv.roles.can)."""

    read_action = Action.CLINICAL_READ

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, self.read_action)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, self.read_action)


class ReadOnlyAdmin(Gated, admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = ["patient_id", "patient_name", "birth_date", "sex"]
    search_fields = ["patient_id", "patient_name"]


@admin.register(Course)
class CourseAdmin(ReadOnlyAdmin):
    list_display = ["patient", "code", "status", "created_at"]


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ["label", "revision", "patient", "course", "status", "dicom_approval_status",
                    "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["label", "patient__patient_id", "sop_instance_uid"]
    exclude = ["instance"]


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    # Sessions change only through rv.services.sessions.session_record.
    list_display = ["treated_at", "plan", "fraction_number", "continuation", "machine",
                    "recorded_by", "verification_status"]
    list_filter = ["verification_status", "machine"]


@admin.register(Appointment)
class AppointmentAdmin(ReadOnlyAdmin):
    list_display = ["date", "time", "duration_minutes", "machine", "plan", "activity",
                    "fraction_number", "status"]
    list_filter = ["status", "activity", "machine"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    read_action = Action.AUDIT_READ
    list_display = ["at", "username", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]


@admin.register(UpsSubscription)
class UpsSubscriptionAdmin(ReadOnlyAdmin):
    """UPS Watch subscriptions (issue 14): changed over DICOM only (N-ACTION 3/4/5)."""
    read_action = Action.UPS_EVENTS_READ
    list_display = ["ae_title", "kind", "workitem", "deletion_lock", "suspended", "created_at"]
    list_filter = ["kind", "suspended", "deletion_lock"]
    search_fields = ["ae_title", "workitem__sop_instance_uid"]


@admin.register(UpsEvent)
class UpsEventAdmin(ReadOnlyAdmin):
    """The UPS N-EVENT-REPORTs queued, sent or dropped (ups_event_worker)."""
    read_action = Action.UPS_EVENTS_READ
    list_display = ["pk", "created_at", "ae_title", "event_type", "workitem_uid", "status",
                    "attempts", "sent_at", "last_error"]
    list_filter = ["status", "event_type", "ae_title"]
    search_fields = ["ae_title", "workitem_uid", "last_error"]


@admin.register(TreatmentMachine)
class TreatmentMachineAdmin(Gated, admin.ModelAdmin):
    list_display = ["name", "manufacturer", "model_name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Action.MACHINE_EDIT)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Action.MACHINE_EDIT)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ToleranceTable)
class ToleranceTableAdmin(Gated, admin.ModelAdmin):
    list_display = ["label", "machine", "version", "is_current", "used_for_delivery", "source"]
    list_filter = ["source", "machine", "is_current"]
    fields = ["machine", "label", *[name for name, _ in TOLERANCE_FIELDS]]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(source=ToleranceTable.Source.USER)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["machine", "label"] if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Action.TOLERANCE_EDIT)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Action.TOLERANCE_EDIT)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ToleranceTable, form: Any,
                   change: bool) -> None:
        values = {name: getattr(obj, name) for name, _ in TOLERANCE_FIELDS}
        try:
            if change:
                saved = tolerance_table_update(table=ToleranceTable.objects.get(pk=obj.pk),
                                               user=request.user, values=values)
            elif obj.machine is None:
                raise DomainError("Choose the machine the table is for.")
            else:
                saved = tolerance_table_create(user=request.user, machine=obj.machine,
                                               label=obj.label, values=values)
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        obj.pk = saved.pk
        obj.refresh_from_db()


class VerityUserAdmin(UserAdmin):
    """Users and roles (admins only): Django's forms write, then rv.services.users audits
    the change in the same transaction (the admin wraps each save in one)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may(request.user, MANAGE_USERS)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request.user, MANAGE_USERS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request.user, MANAGE_USERS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request.user, MANAGE_USERS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # users who signed clinical records stay; deactivate instead

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        request._rv_roles_before = roles_of(obj) if change else []  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any,
                     change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user_admin_saved(by=request.user, user=form.instance, created=not change,
                         changed=list(form.changed_data),
                         roles_before=getattr(request, "_rv_roles_before", []))


    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""
                             ) -> Any:
        """Django's password form saves on its own: the save and its audit event share
        one transaction here."""
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user_admin_password_changed(by=request.user, user=AuthUser.objects.get(pk=id))
        return response


admin.site.unregister(AuthUser)
admin.site.register(AuthUser, VerityUserAdmin)

# The archive's index pages show patients: gated like rv's (archive does not import rv).
for _model, _base in ((am.Patient, archive_admin.PatientAdmin),
                      (am.Study, archive_admin.StudyAdmin),
                      (am.Series, archive_admin.SeriesAdmin),
                      (am.Instance, archive_admin.InstanceAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (Gated, _base), {}))

class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens as knox keeps them: a digest, never the token. Revoke by deleting; tokens
    are made only by POST /api/v1/auth/token/ (so every one is audited)."""
    list_display = ("token_key", "user", "created", "expiry")
    fields = ("token_key", "user", "created", "expiry")
    readonly_fields = fields
    search_fields = ("user__username",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.unregister(KnoxAuthToken)
admin.site.register(KnoxAuthToken, ApiTokenAdmin)
