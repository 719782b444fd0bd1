from django.contrib import admin

from archive.models import Instance, Patient, Series, Study


class ReadOnlyIndexAdmin(admin.ModelAdmin):
    """The index mirrors the stored files: it is browsed here, never edited by hand."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyIndexAdmin):
    list_display = ["patient_id", "patient_name", "birth_date", "sex", "created_at"]
    search_fields = ["patient_id", "patient_name"]


@admin.register(Study)
class StudyAdmin(ReadOnlyIndexAdmin):
    list_display = ["study_instance_uid", "patient", "study_date", "accession_number",
                    "study_description"]
    search_fields = ["study_instance_uid", "accession_number", "patient__patient_id"]
    list_filter = ["study_date"]


@admin.register(Series)
class SeriesAdmin(ReadOnlyIndexAdmin):
    list_display = ["series_instance_uid", "study", "modality", "series_number",
                    "series_description"]
    search_fields = ["series_instance_uid"]
    list_filter = ["modality"]


@admin.register(Instance)
class InstanceAdmin(ReadOnlyIndexAdmin):
    list_display = ["sop_instance_uid", "sop_class_uid", "series", "size", "calling_ae",
                    "received_at"]
    search_fields = ["sop_instance_uid", "sha256"]
    list_filter = ["sop_class_uid", "calling_ae", "source"]
