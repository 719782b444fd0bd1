"""Audit events are append-only: the model refuses, and on PostgreSQL so does the database."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from rv.models import AuditEvent
from tests.rv.conftest import receive_plan

pytestmark = pytest.mark.django_db


def test_audit_event_cannot_be_changed_or_deleted() -> None:
    receive_plan()
    event = AuditEvent.objects.get(action="plan.import")
    assert event.username == "TPS" and event.user is None
    event.action = "tampered"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_database_refuses_update_and_delete_of_audit_rows() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    receive_plan()
    for statement in (lambda: AuditEvent.objects.update(action="tampered"),
                      lambda: AuditEvent.objects.all().delete()):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            statement()
    assert AuditEvent.objects.filter(action="plan.import").count() == 1


def test_audit_record_outside_a_transaction_is_refused(transactional_db) -> None:  # type: ignore[no-untyped-def]
    from rv.services.audit import audit_record

    with pytest.raises(RuntimeError, match="inside"):
        audit_record(action="x", obj=AuditEvent(pk=1))
