"""The export queue: jobs made in the caller's transaction, sent by `export_worker` to DCMTK's
storescp byte for byte, retried with backoff while the peer is down, taken over after a
worker is killed, and sent exactly once with two workers at a time."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from archive import storage
from archive.dicomio import ensure_part10
from archive.models import Instance
from archive.services import instance_store
from dicom_net.exports import export_enqueue, export_retry, retry_delay
from dicom_net.models import ExportJob, Node
from dicom_net.services import node_add
from dicom_net.statuses import status_dataset
from tests.conftest import REPO, free_port
from tests.helpers import child_env, dataset_bytes, make_ct, sample, to_bytes

pytestmark = pytest.mark.interop


def stored(n: int = 1) -> list[Instance]:
    return [instance_store(data=to_bytes(make_ct(patient_id=f"EXP{i}")), source="generated")
            .instance for i in range(n)]


def peer_node(port: int, ae: str = "PEER") -> Node:
    return node_add(name=f"peer-{port}", ae_title=ae, host="127.0.0.1", port=port,
                    receives_exports=True, can_store=False, can_query=False)


def drain() -> str:
    out = StringIO()
    call_command("export_worker", "--once", stdout=out)
    return out.getvalue()


def received_uids(folder: Path) -> list[str]:
    return sorted(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                  for p in folder.iterdir())


@pytest.mark.django_db
def test_enqueue_joins_the_callers_transaction() -> None:
    (instance,) = stored()
    peer = peer_node(104)
    node_add(name="other", ae_title="OTHER", host="127.0.0.1", port=105)
    with pytest.raises(RuntimeError), transaction.atomic():
        export_enqueue(instance=instance)
        raise RuntimeError("the record could not be saved")
    assert ExportJob.objects.count() == 0
    (job,) = export_enqueue(instance=instance)
    assert (job.node, job.status, job.attempts) == (peer, ExportJob.Status.PENDING, 0)
    with pytest.raises(ValidationError, match="not registered to receive exports"):
        export_enqueue(instance=instance, nodes=[Node.objects.get(name="other")])


def test_exported_files_are_byte_identical(transactional_db, storescp_peer) -> None:  # type: ignore[no-untyped-def]
    port, out = storescp_peer("PEER")
    peer = peer_node(port)
    instances = stored(2)
    plan = ensure_part10(sample("rtplan.dcm").read_bytes())  # Implicit VR Little Endian
    instances.append(instance_store(data=plan, source="import").instance)
    for instance in instances:
        export_enqueue(instance=instance)
    output = drain()
    assert "3 sent, 0 not sent" in output, output
    assert received_uids(out) == sorted(i.sop_instance_uid for i in instances)
    for path in out.iterdir():
        inst = Instance.objects.get(sop_instance_uid=dcmread(path).SOPInstanceUID)
        kept = storage.absolute_path(inst.path).read_bytes()
        assert dataset_bytes(path.read_bytes()) == dataset_bytes(kept)
    assert set(ExportJob.objects.values_list("status", "attempts", "node")) == {
        (ExportJob.Status.DONE, 1, peer.pk)}


def test_peer_down_retries_with_backoff_then_delivers(
        transactional_db, storescp_peer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_EXPORT_BASE_DELAY = 1.0
    port = free_port()
    peer_node(port)
    (instance,) = stored()
    (job,) = export_enqueue(instance=instance)

    drain()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (ExportJob.Status.PENDING, 1)
    assert "no association" in job.last_error
    assert job.next_attempt_at - job.updated_at == timedelta(seconds=1)
    drain()  # not due yet: no attempt
    job.refresh_from_db()
    assert job.attempts == 1

    time.sleep(1.1)
    drain()
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.next_attempt_at - job.updated_at == timedelta(seconds=2)  # doubled
    assert retry_delay(3) == pytest.approx(4.0)

    _, out = storescp_peer("PEER", port)
    time.sleep(max(0.0, (job.next_attempt_at - timezone.now()).total_seconds()) + 0.1)
    drain()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.last_error) == (ExportJob.Status.DONE, 3, "")
    assert received_uids(out) == [instance.sop_instance_uid]


def _refusing_peer(status: int, comment: str):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="PICKY")
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    ae.start_server(("127.0.0.1", port), block=False,
                    evt_handlers=[(evt.EVT_C_STORE, lambda e: status_dataset(status, comment))])
    return ae, port


def test_last_attempt_fails_with_the_peers_status_and_retry_resends(
        transactional_db, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_EXPORT_BASE_DELAY = 0
    settings.RV_EXPORT_MAX_ATTEMPTS = 3
    ae, port = _refusing_peer(0xA700, "disk full")
    try:
        node_add(name="picky", ae_title="PICKY", host="127.0.0.1", port=port,
                 receives_exports=True)
        (instance,) = stored()
        (job,) = export_enqueue(instance=instance)
        output = drain()
        job.refresh_from_db()
        assert (job.status, job.attempts) == (ExportJob.Status.FAILED, 3), output
        assert job.last_error == "0xA700: disk full"
        assert "0 sent, 3 not sent" in output
        with pytest.raises(ValidationError):
            export_retry(job=export_enqueue(instance=instance)[0])  # pending: already queued
        job = export_retry(job=job)
        assert (job.status, job.attempts) == (ExportJob.Status.PENDING, 0)
    finally:
        ae.shutdown()


def _worker(data_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "export_worker", *args],
        env=child_env(data_dir, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


LEASE = "5"


def test_killed_worker_job_is_taken_over_after_the_lease_and_sent_once(
        transactional_db, storescp_peer, data_dir) -> None:  # type: ignore[no-untyped-def]
    # A peer that takes the association and then holds the C-STORE until told.
    entered, release = threading.Event(), threading.Event()

    def hold(event):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(30)
        return 0xA700

    hanging = AE(ae_title="PEER")
    hanging.add_supported_context(CTImageStorage)
    hanging_port = free_port()
    hanging.start_server(("127.0.0.1", hanging_port), block=False,
                         evt_handlers=[(evt.EVT_C_STORE, hold)])
    peer = peer_node(hanging_port)
    (instance,) = stored()
    (job,) = export_enqueue(instance=instance)
    worker = _worker(data_dir, "--poll", "0.1", RV_EXPORT_LEASE=LEASE)
    try:
        assert entered.wait(30), "the worker never sent"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        release.set()
        hanging.shutdown()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (ExportJob.Status.SENDING, 1)

    port, out = storescp_peer("PEER")
    Node.objects.filter(pk=peer.pk).update(port=port)
    early = _worker(data_dir, "--once", RV_EXPORT_LEASE=LEASE)
    assert "0 sent" in early.communicate(timeout=60)[0]  # still leased to the dead worker
    assert job.claimed_at is not None
    expires = job.claimed_at + timedelta(seconds=float(LEASE))
    time.sleep(max(0.0, (expires - timezone.now()).total_seconds()) + 0.1)
    late = _worker(data_dir, "--once", RV_EXPORT_LEASE=LEASE)
    output = late.communicate(timeout=60)[0]
    assert late.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts) == (ExportJob.Status.DONE, 2), output
    assert received_uids(out) == [instance.sop_instance_uid]


def test_two_workers_send_each_job_exactly_once(
        transactional_db, storescp_peer, data_dir) -> None:  # type: ignore[no-untyped-def]
    port, out = storescp_peer("PEER")
    peer_node(port)
    instances = stored(24)
    for instance in instances:
        export_enqueue(instance=instance)
    workers = [_worker(data_dir, "--once") for _ in range(2)]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert received_uids(out) == sorted(i.sop_instance_uid for i in instances)  # once each
    assert set(ExportJob.objects.values_list("status", "attempts")) == {
        (ExportJob.Status.DONE, 1)}
    sent = [int(o.split(" sent,")[0].rsplit(" ", 1)[1]) for o in outputs]
    assert sum(sent) == 24, outputs


def test_worker_stops_cleanly_on_sigterm(transactional_db, data_dir) -> None:  # type: ignore[no-untyped-def]
    worker = _worker(data_dir, "--poll", "0.1")
    assert worker.stdout is not None
    assert "running" in worker.stdout.readline()
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    assert "stopped" in output


@pytest.mark.django_db
def test_rv_queues_exports_through_its_outbox_in_its_own_transaction() -> None:
    from rv.outbox import record_export

    (instance,) = stored()
    peer_node(104)
    with pytest.raises(RuntimeError), transaction.atomic():
        record_export(instance=instance)
        raise RuntimeError("the record could not be saved")
    assert not ExportJob.objects.exists()
    (job,) = record_export(instance=instance)
    assert job.instance == instance
