"""Audit rows are append-only: on PostgreSQL a trigger refuses UPDATE and DELETE of rows (SQLite
relies on the model's guard). TRUNCATE stays possible: test database flushes use it."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION rv_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'rv_auditevent is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rv_auditevent_no_change BEFORE UPDATE OR DELETE ON rv_auditevent
    FOR EACH ROW EXECUTE FUNCTION rv_auditevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS rv_auditevent_no_change ON rv_auditevent;
DROP FUNCTION IF EXISTS rv_auditevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("rv", "0002_plans")]
    operations = [migrations.RunPython(forwards, backwards)]
