"""The archive index: Patient / Study / Series / Instance (PS3.4 C.6.1 / C.6.2 information
models), holding the keys Query/Retrieve matches on and where each file lies."""

from __future__ import annotations

from django.db import models


class Patient(models.Model):
    # PS3.4 C.6.1.1.2 Patient level
    patient_id = models.CharField(max_length=64, db_index=True, blank=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=324, db_index=True, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "issuer_of_patient_id"],
                                    name="archive_patient_id_issuer_unique"),
        ]
        ordering = ["patient_name", "patient_id"]

    def __str__(self) -> str:
        return f"{self.patient_name or '(no name)'} [{self.patient_id or 'no ID'}]"


class Study(models.Model):
    # PS3.4 C.6.1.1.3 Study level
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-study_date", "study_instance_uid"]

    def __str__(self) -> str:
        return f"{self.study_description or 'Study'} {self.study_date or ''}".strip()


class Series(models.Model):
    # PS3.4 C.6.1.1.4 Series level
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    series_date = models.DateField(null=True, blank=True)
    series_time = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["series_number", "series_instance_uid"]

    def __str__(self) -> str:
        return f"{self.modality} {self.series_number or ''} {self.series_description}".strip()


class Instance(models.Model):
    # PS3.4 C.6.1.1.5 Composite object instance level, plus the stored file's facts.
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64, db_index=True)
    instance_number = models.IntegerField(null=True, blank=True)
    content_date = models.DateField(null=True, blank=True)
    content_time = models.CharField(max_length=16, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    path = models.CharField(max_length=255, help_text="relative to RV_DATA_DIR/dicom")
    calling_ae = models.CharField(max_length=16, blank=True,
                                  help_text="who sent it; empty for local imports")
    source = models.CharField(max_length=16, default="c-store",
                              help_text="c-store, import or generated")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["instance_number", "sop_instance_uid"]

    def __str__(self) -> str:
        return self.sop_instance_uid
