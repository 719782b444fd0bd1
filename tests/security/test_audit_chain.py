"""Audit that shows tampering (issue 12): TRUNCATE refused on PostgreSQL like UPDATE and
DELETE; every event hash-chained to the one before; `manage.py audit_verify` reports an
edited row or a gap and exits non-zero, OK otherwise; concurrent writers keep one chain."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from rv.models import AuditEvent
from rv.services.audit import audit_chain_verify, audit_record


def _events(n: int) -> list[AuditEvent]:
    out = []
    for i in range(n):
        with transaction.atomic():
            out.append(audit_record(action="test.event", obj=None, username=f"u{i}",
                                    object_type="test", object_id=str(i),
                                    details={"i": i, "note": "é", "f": 0.1}))
    return out


def _verify() -> tuple[bool, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except CommandError as exc:
        return False, err.getvalue() + str(exc)
    return True, out.getvalue()


def _raw(sql: str, params: list[str | int]) -> None:
    """Change the table behind the application's back, as a database owner could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # a superuser switches the triggers off
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")


@pytest.mark.django_db
def test_untouched_chain_verifies_ok() -> None:
    events = _events(5)
    assert [e.seq for e in AuditEvent.objects.order_by("seq")] == [1, 2, 3, 4, 5]
    ok, text = _verify()
    assert ok and text.startswith("OK: 5 audit events chained")
    assert events[-1].hash in text


@pytest.mark.django_db
def test_edited_row_is_reported() -> None:
    events = _events(5)
    _raw("UPDATE rv_auditevent SET username = %s WHERE id = %s", ["mallory", events[2].pk])
    ok, text = _verify()
    assert not ok and "seq 3" in text and "edited" in text


@pytest.mark.django_db
def test_edited_details_are_reported() -> None:
    events = _events(3)
    _raw("UPDATE rv_auditevent SET details = %s WHERE id = %s", ['{"i": 99}', events[0].pk])
    ok, text = _verify()
    assert not ok and "seq 1" in text


@pytest.mark.django_db
def test_deleted_row_is_reported_as_a_gap() -> None:
    events = _events(5)
    _raw("DELETE FROM rv_auditevent WHERE id = %s", [events[1].pk])
    ok, text = _verify()
    assert not ok and "events 2..2 are missing" in text


@pytest.mark.django_db
def test_rehashed_forgery_breaks_the_next_link() -> None:
    """Editing a row and recomputing its own hash still breaks the row after it."""
    from rv.services.audit import hash_of

    events = _events(4)
    forged = AuditEvent.objects.get(pk=events[1].pk)
    forged.username = "mallory"
    _raw("UPDATE rv_auditevent SET username = %s, hash = %s WHERE id = %s",
         ["mallory", hash_of(forged), forged.pk])
    problems = [str(p) for p in audit_chain_verify()]
    assert problems and "seq 3" in problems[0] and "previous hash" in problems[0]


@pytest.mark.django_db
def test_removed_head_is_reported_against_a_noted_head() -> None:
    events = _events(3)
    head = f"{events[-1].seq}:{events[-1].hash}"
    _raw("DELETE FROM rv_auditevent WHERE id = %s", [events[-1].pk])
    assert _verify()[0]  # a shorter chain is still a chain ...
    with pytest.raises(CommandError):  # ... but not the head noted before
        call_command("audit_verify", expect_head=head, stdout=io.StringIO(),
                     stderr=io.StringIO())


@pytest.mark.django_db
def test_truncate_is_refused_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE and its trigger exist on PostgreSQL only")
    _events(2)
    with connection.cursor() as cursor:
        # The suite's own connections may truncate (tests/conftest.py); an application's not.
        cursor.execute("SET LOCAL rv.audit_truncate = 'no'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as in a fresh transaction
        with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
            cursor.execute("TRUNCATE rv_auditevent CASCADE")
        for sql in ("UPDATE rv_auditevent SET username = 'x'", "DELETE FROM rv_auditevent"):
            with pytest.raises(DatabaseError, match="refused"), transaction.atomic():
                cursor.execute(sql)
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_chain() -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(8):
                with transaction.atomic():
                    audit_record(action="test.concurrent", obj=None, username=f"w{n}",
                                 object_type="test", object_id=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 32
    assert list(audit_chain_verify()) == []
