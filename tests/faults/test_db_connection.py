"""The SCP and a dropped database connection: an open association recovers on its next
C-STORE, and a store that fails for good leaves no file behind (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage

from archive import integrity, storage
from archive.models import Instance
from dicom_net.models import AssociationLog
from tests.factories import ct_image
from tests.faults.procs import (
    assert_acknowledged_archived,
    needs_postgresql,
    other_backends,
    terminate_backends,
    wait_for,
)

pytestmark = [needs_postgresql, pytest.mark.django_db(transaction=True)]


def _associate(port: int, calling: str) -> Association:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    return assoc


def _store(assoc: Association, patient_id: str, *, series: tuple[str, str] | None = None,
           ) -> tuple[int, str]:
    study, series_uid = series or (generate_uid(), generate_uid())
    ds = ct_image(patient_id=patient_id, study_instance_uid=study, series_instance_uid=series_uid)
    status = assoc.send_c_store(ds)
    assert status and "Status" in status
    return int(status.Status), str(ds.SOPInstanceUID)


def _files() -> list[str]:
    return sorted(str(p) for p in storage.root().rglob("*.dcm") if ".tmp" not in p.parts)


def test_an_association_recovers_from_a_terminated_backend_on_its_next_c_store(
        live_scp: tuple[str, int]) -> None:
    _, port = live_scp
    assoc = _associate(port, "BLIP_SCU")
    try:
        first, uid1 = _store(assoc, "BLIP-1")
        assert first == 0x0000
        scp_backends = wait_for(other_backends, "the SCP's database backend")
        terminate_backends(scp_backends)
        wait_for(lambda: not set(other_backends()) & set(scp_backends),
                 "the SCP's backend to be gone")
        # The SCP's connection is dead but it does not know yet: the next stores must
        # still succeed, on the same association.
        second, uid2 = _store(assoc, "BLIP-2")
        third, uid3 = _store(assoc, "BLIP-3")
        assert (second, third) == (0x0000, 0x0000)
        # Dropped again before the release: the association log is still closed properly.
        scp_backends = wait_for(other_backends, "the SCP's new database backend")
        terminate_backends(scp_backends)
        wait_for(lambda: not set(other_backends()) & set(scp_backends),
                 "the SCP's backend to be gone")
    finally:
        assoc.release()
    row = wait_for(lambda: AssociationLog.objects.filter(
        calling_ae="BLIP_SCU", outcome=AssociationLog.Outcome.RELEASED).first(),
        "the association log row to be closed")
    assert (row.stored, row.failed) == (3, 0)
    assert_acknowledged_archived([uid1, uid2, uid3])
    assert Instance.objects.count() == 3
    assert not integrity.check().orphans


@pytest.fixture
def backend_killing_trigger() -> Iterator[None]:
    """Every insert of an Instance row sent by DOOMED_SCU terminates its own database
    connection: the store fails on the connection, and so does its retry."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION faults_kill_own_backend() RETURNS trigger AS $$
            BEGIN
                IF NEW.calling_ae = 'DOOMED_SCU' THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                    PERFORM pg_sleep(5);
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        cursor.execute(f"""
            CREATE TRIGGER faults_kill_own_backend BEFORE INSERT ON {Instance._meta.db_table}
            FOR EACH ROW EXECUTE FUNCTION faults_kill_own_backend()""")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER faults_kill_own_backend ON {Instance._meta.db_table}")
            cursor.execute("DROP FUNCTION faults_kill_own_backend()")


def test_a_store_failing_on_a_dropped_connection_leaves_no_file(
        live_scp: tuple[str, int], backend_killing_trigger: None) -> None:
    _, port = live_scp
    series = (generate_uid(), generate_uid())
    fine = _associate(port, "FINE_SCU")
    try:
        status, uid1 = _store(fine, "P-FAULT", series=series)
    finally:
        fine.release()
    assert status == 0x0000
    files = _files()
    # Objects of a series already held take the one-statement path (autocommit INSERT).
    doomed = _associate(port, "DOOMED_SCU")
    try:
        statuses = [_store(doomed, "P-FAULT", series=series)[0] for _ in range(3)]
        # ... and a new series the transaction path.
        statuses.append(_store(doomed, "P-FAULT")[0])
    finally:
        doomed.release()
    assert statuses == [0xA700] * 4  # out of resources: send again later
    assert Instance.objects.count() == 1
    assert _files() == files, "a refused store left its file behind"
    assert not list((storage.root() / ".tmp").glob("rm-*")), "a file was left aside"
    # The SCP itself is fine: a sender stores at once.
    fine = _associate(port, "FINE_SCU")
    try:
        status, uid2 = _store(fine, "P-FAULT", series=series)
    finally:
        fine.release()
    assert status == 0x0000
    assert_acknowledged_archived([uid1, uid2])
    assert not integrity.check().orphans
