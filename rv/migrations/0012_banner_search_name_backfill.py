"""Backfill Patient.search_name (issue 15) for patients made before the column: the same
rv.names.search_key the services write it with (a pure function of the name)."""

from django.db import migrations


def backfill(apps, schema_editor):
    from rv.names import search_key

    Patient = apps.get_model("rv", "Patient")
    batch = []
    for patient in Patient.objects.only("pk", "patient_name").order_by("pk").iterator(
            chunk_size=2000):
        patient.search_name = search_key(patient.patient_name)
        batch.append(patient)
        if len(batch) >= 2000:
            Patient.objects.bulk_update(batch, ["search_name"])
            batch = []
    if batch:
        Patient.objects.bulk_update(batch, ["search_name"])


class Migration(migrations.Migration):

    dependencies = [("rv", "0011_banner_patient_view")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
