"""Issue 12: the audit hash chain (seq, prev_hash, hash), existing rows chained in id order,
and on PostgreSQL a trigger that refuses TRUNCATE like UPDATE and DELETE.

TRUNCATE is let through only for the table's owner with the session setting
rv.audit_truncate = 'allow' (the test suite's database flushes set it; see tests/conftest.py):
the owner can disable triggers anyway, and the hash chain shows what was lost."""

import django.utils.timezone
from django.db import migrations, models

TRUNCATE_GUARD = """
CREATE OR REPLACE FUNCTION rv_auditevent_no_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('rv.audit_truncate', true) = 'allow' AND pg_has_role(
            current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'rv_auditevent is append-only: TRUNCATE refused';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rv_auditevent_no_truncate BEFORE TRUNCATE ON rv_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION rv_auditevent_no_truncate();
"""
TRUNCATE_DROP = """
DROP TRIGGER IF EXISTS rv_auditevent_no_truncate ON rv_auditevent;
DROP FUNCTION IF EXISTS rv_auditevent_no_truncate();
"""


def chain_existing(apps, schema_editor):
    from rv.services.audit import GENESIS, event_hash

    AuditEvent = apps.get_model("rv", "AuditEvent")
    pg = schema_editor.connection.vendor == "postgresql"
    if pg:
        schema_editor.execute("ALTER TABLE rv_auditevent DISABLE TRIGGER rv_auditevent_no_change")
    prev = GENESIS
    for seq, event in enumerate(AuditEvent.objects.order_by("id").iterator(), start=1):
        digest = event_hash(prev_hash=prev, seq=seq, at=event.at, user_id=event.user_id,
                            username=event.username, action=event.action,
                            object_type=event.object_type, object_id=event.object_id,
                            details=event.details)
        AuditEvent.objects.filter(pk=event.pk).update(seq=seq, prev_hash=prev, hash=digest)
        prev = digest
    if pg:
        schema_editor.execute("ALTER TABLE rv_auditevent ENABLE TRIGGER rv_auditevent_no_change")
        schema_editor.execute(TRUNCATE_GUARD)


def unchain(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRUNCATE_DROP)


class Migration(migrations.Migration):

    dependencies = [
        ('rv', '0006_merge_0005_history_indexes_0005_machine_records'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='seq',
            field=models.BigIntegerField(editable=False, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.RunPython(chain_existing, unchain),
    ]
