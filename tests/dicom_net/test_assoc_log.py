"""dicom_net.assoc_log: the association log's rows written in one statement each are the
rows Django's ORM wrote (issue 16)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from dicom_net import assoc_log
from dicom_net.models import AssociationLog

pytestmark = pytest.mark.django_db


def test_the_opening_row_is_the_row_the_orm_writes() -> None:
    before = timezone.now()
    log_id = assoc_log.log_open(calling_ae="LINAC1", called_ae="RV_SCP",
                                peer_host="10.0.0.7", peer_port=40123)
    ours = AssociationLog.objects.get(pk=log_id)
    theirs = AssociationLog.objects.create(calling_ae="LINAC1", called_ae="RV_SCP",
                                           peer_host="10.0.0.7", peer_port=40123,
                                           pid=os.getpid())
    theirs.refresh_from_db()
    skip = {"id", "started_at"}
    fields = [f.attname for f in AssociationLog._meta.concrete_fields if f.name not in skip]
    assert ({f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields})
    assert ours.outcome == AssociationLog.Outcome.OPEN and ours.failures == []
    assert before <= ours.started_at <= timezone.now() + timedelta(seconds=1)


def test_the_ending_updates_that_row_only() -> None:
    first = assoc_log.log_open(calling_ae="A", called_ae="RV_SCP", peer_host="h",
                               peer_port=None)
    other = assoc_log.log_open(calling_ae="B", called_ae="RV_SCP", peer_host="h",
                               peer_port=1)
    failures = [{"sop_instance_uid": "1.2.3", "status": "0xA900",
                 "comment": "dataset doesn't match \u00e9 'quoted' %s"}]
    assoc_log.log_end(first, outcome=AssociationLog.Outcome.RELEASED, stored=3,
                      duplicates=1, failed=1, echoes=2, failures=failures)
    row = AssociationLog.objects.get(pk=first)
    assert (row.outcome, row.stored, row.duplicates, row.failed, row.echoes) == (
        "released", 3, 1, 1, 2)
    assert row.failures == failures
    assert row.ended_at is not None and row.ended_at >= row.started_at
    untouched = AssociationLog.objects.get(pk=other)
    assert untouched.outcome == "open" and untouched.ended_at is None


def test_a_value_the_column_cannot_hold_is_a_database_error_with_nothing_written() -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        assoc_log.log_open(calling_ae="A", called_ae="RV_SCP", peer_host="h",
                           peer_port=-1)  # PositiveIntegerField: a CHECK constraint
    assert not AssociationLog.objects.exists()


def test_a_nul_in_a_peers_text_does_not_leave_the_row_open() -> None:
    log_id = assoc_log.log_open(calling_ae="A", called_ae="RV_SCP", peer_host="h",
                                peer_port=1)
    assoc_log.log_end(log_id, outcome=AssociationLog.Outcome.RELEASED, stored=0,
                      duplicates=0, failed=1, echoes=0,
                      failures=[{"sop_instance_uid": "1.2\x003", "status": "0xA900",
                                 "comment": "bad\x00"}])
    row = AssociationLog.objects.get(pk=log_id)
    assert row.outcome == "released"
    assert row.failures == [{"sop_instance_uid": "1.2\ufffd3", "status": "0xA900",
                             "comment": "bad\ufffd"}]
