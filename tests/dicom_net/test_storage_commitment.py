"""Storage Commitment Push Model (PS3.4 Annex J), both ways, over real associations.

Verity as SCP, asked by a pynetdicom SCU: the report lists what Verity can prove it holds
(in the archive, under that class, its file unchanged) and fails the rest with their reasons;
it comes on the request's association while the SCU waits there, else on a new association
to the registered node; retried by the export worker while the node is down. Verity as SCU
(committed exports), against an in-test receiving archive: an export is DONE only once the
node committed it; a failed commitment sends it again. Then Orthanc (Debian's package, a
process per test, tests/dicom_net/orthanc.py), the real peer, both ways: asked over its REST
API to request commitment from Verity, and as the archive receiving a session's records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from archive import storage
from archive.models import Instance
from archive.services import instance_store
from dicom_net.commitment_scu import export_commit_process
from dicom_net.exports import export_enqueue, export_process
from dicom_net.models import CommitmentRequest, ExportJob
from dicom_net.services import node_add
from tests.conftest import free_port
from tests.dicom_net.commitment_peers import (
    Archive,
    Mailbox,
    ask,
    reasons_of,
    refs_of,
    report_listener,
)
from tests.dicom_net.orthanc import Orthanc
from tests.helpers import eventually, make_ct, to_bytes
from tests.rv.conftest import PASSWORD, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.interop

Received = CommitmentRequest.Direction.RECEIVED


def stored(n: int = 1) -> list[Instance]:
    return [instance_store(data=to_bytes(make_ct(patient_id=f"SC{i}")), source="generated")
            .instance for i in range(n)]


def ref(instance: Instance) -> tuple[str, str]:
    return instance.sop_class_uid, instance.sop_instance_uid


def damage(instance: Instance) -> None:
    """Change one byte of the archived file (its size stays)."""
    path = storage.absolute_path(instance.path)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def row(uid: str) -> CommitmentRequest:
    return CommitmentRequest.objects.get(direction=Received, transaction_uid=uid)


def settled(uid: str) -> CommitmentRequest:
    """The received request once its first attempt is recorded (the SCP's reporter)."""
    def check() -> CommitmentRequest:
        found = row(uid)
        assert found.status != CommitmentRequest.Status.SENDING
        return found
    return eventually(check, timeout=30)


def drain() -> str:
    out = StringIO()
    call_command("export_worker", "--once", stdout=out)
    return out.getvalue()


def test_all_committed_on_the_same_association(live_scp: tuple[str, int]) -> None:
    instances = stored(2)
    mailbox = Mailbox()
    status, uid = ask(live_scp[1], [ref(i) for i in instances], mailbox=mailbox)
    assert int(status.Status) == 0x0000
    event_type, info, how = mailbox.next()
    assert (event_type, how) == (1, "same")
    assert info.TransactionUID == uid
    assert sorted(refs_of(info.ReferencedSOPSequence)) == sorted(ref(i) for i in instances)
    assert "FailedSOPSequence" not in info
    assert info.RetrieveAETitle == "RV_SCP"
    done = settled(uid)
    assert (done.status, done.via, done.event_type, done.attempts) == (
        CommitmentRequest.Status.REPORTED, "same", 1, 1)
    assert sorted(map(tuple, done.committed)) == sorted(ref(i) for i in instances)


def test_missing_damaged_and_mismatched_instances_fail_with_their_reasons(
        live_scp: tuple[str, int]) -> None:
    good, damaged, gone = stored(3)
    damage(damaged)
    storage.absolute_path(gone.path).unlink()
    missing = (CTImageStorage, generate_uid())
    wrong_class = (MRImageStorage, good.sop_instance_uid)
    unknown_class = ("1.2.840.10008.5.1.4.1.1.77.1.6", generate_uid())  # VL WSI: not stored
    refs = [ref(good), ref(damaged), ref(gone), missing, wrong_class, unknown_class]
    mailbox = Mailbox()
    status, uid = ask(live_scp[1], refs, mailbox=mailbox)
    assert int(status.Status) == 0x0000
    event_type, info, how = mailbox.next()
    assert (event_type, how) == (2, "same")
    assert refs_of(info.ReferencedSOPSequence) == [ref(good)]
    assert reasons_of(info) == {
        damaged.sop_instance_uid: 0x0110,  # processing failure: the file is not what was kept
        gone.sop_instance_uid: 0x0112,  # no such object instance: its file is missing
        missing[1]: 0x0112,  # not in the archive
        good.sop_instance_uid: 0x0119,  # class / instance conflict (asked as MR)
        unknown_class[1]: 0x0122,  # a SOP class Verity does not store
    }
    # Every reference is in the report, once (PS3.4 J.3.3.1.2).
    failed = refs_of(info.FailedSOPSequence)
    assert sorted(failed + [ref(good)]) == sorted(refs)
    why = {f[1]: f[3] for f in settled(uid).failed}
    assert "content differs" in why[damaged.sop_instance_uid]


def test_a_reused_transaction_uid_fails_every_reference(live_scp: tuple[str, int]) -> None:
    (instance,) = stored()
    mailbox = Mailbox()
    _, uid = ask(live_scp[1], [ref(instance)], mailbox=mailbox)
    assert mailbox.next()[0] == 1
    ask(live_scp[1], [ref(instance)], mailbox=mailbox, transaction_uid=uid)
    event_type, info, _ = mailbox.next()
    assert event_type == 2 and "ReferencedSOPSequence" not in info
    assert reasons_of(info) == {instance.sop_instance_uid: 0x0131}
    assert CommitmentRequest.objects.filter(transaction_uid=uid, duplicate=True).count() == 1


def test_a_peer_that_leaves_gets_the_report_on_a_new_association(
        live_scp: tuple[str, int]) -> None:
    (instance,) = stored()
    mailbox = Mailbox()
    with report_listener(mailbox) as port:
        node_add(name="scu", ae_title="SCU", host="127.0.0.1", port=port, can_query=False)
        status, uid = ask(live_scp[1], [ref(instance)], wait=False)  # released at once
        assert int(status.Status) == 0x0000
        event_type, info, how = mailbox.next()
    assert (event_type, how, info.TransactionUID) == (1, "new", uid)
    assert refs_of(info.ReferencedSOPSequence) == [ref(instance)]
    assert (settled(uid).status, row(uid).via) == (CommitmentRequest.Status.REPORTED, "new")


def test_an_unregistered_peer_that_leaves_cannot_be_told(live_scp: tuple[str, int]) -> None:
    (instance,) = stored()
    _, uid = ask(live_scp[1], [ref(instance)], wait=False, ae_title="STRANGER")
    kept = settled(uid)
    assert kept.status == CommitmentRequest.Status.UNDELIVERABLE
    assert "STRANGER is not a registered node" in kept.last_error
    assert [tuple(r) for r in kept.committed] == [ref(instance)]  # what it would have said


def test_a_node_down_is_told_later_by_the_worker(live_scp: tuple[str, int], settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_EXPORT_BASE_DELAY = 0.0
    (instance,) = stored()
    mailbox = Mailbox()
    port = free_port()
    node_add(name="scu", ae_title="SCU", host="127.0.0.1", port=port, can_query=False)
    _, uid = ask(live_scp[1], [ref(instance)], wait=False)
    first = settled(uid)
    assert (first.status, first.attempts) == (CommitmentRequest.Status.PENDING, 1)
    assert "no association" in first.last_error
    assert mailbox.empty()
    with report_listener(mailbox, port=port):  # the node is back
        output = drain()
        event_type, info, how = mailbox.next()
    assert f"commitment report {uid} to SCU: reported" in output
    assert (event_type, how, info.TransactionUID) == (1, "new", uid)
    done = row(uid)
    assert (done.status, done.attempts, done.via) == (CommitmentRequest.Status.REPORTED, 2,
                                                      "new")


def test_requests_verity_refuses(live_scp: tuple[str, int], settings) -> None:  # type: ignore[no-untyped-def]
    (instance,) = stored()
    node_add(name="viewer", ae_title="VIEWER", host="127.0.0.1", port=104, can_store=False)
    status, _ = ask(live_scp[1], [ref(instance)], wait=False, ae_title="VIEWER")
    assert int(status.Status) == 0x0124 and "store role" in status.ErrorComment
    status, _ = ask(live_scp[1], [ref(instance)], wait=False, action_type=2)
    assert int(status.Status) == 0x0123
    status, _ = ask(live_scp[1], [], wait=False, no_info=True)
    assert int(status.Status) == 0x0115 and "no Action Information" in status.ErrorComment
    no_uid = Dataset()
    no_uid.ReferencedSOPSequence = []
    status, _ = ask(live_scp[1], [], wait=False, info=no_uid)
    assert int(status.Status) == 0x0115 and "Transaction UID" in status.ErrorComment
    no_refs = Dataset()
    no_refs.TransactionUID = generate_uid()
    status, _ = ask(live_scp[1], [], wait=False, info=no_refs)
    assert int(status.Status) == 0x0115 and "Referenced SOP Sequence" in status.ErrorComment
    settings.RV_COMMIT_MAX_REFERENCES = 1
    status, _ = ask(live_scp[1], [ref(instance), (CTImageStorage, generate_uid())], wait=False)
    assert int(status.Status) == 0x0213
    assert not CommitmentRequest.objects.exists()  # nothing refused leaves a row


# --- Verity as SCU: committed exports --------------------------------------------------

@pytest.fixture
def archive_peer(live_scp: tuple[str, int]) -> Any:
    peers: list[Archive] = []

    def start(**kwargs: Any) -> Archive:
        peer = Archive(verity_port=live_scp[1], **kwargs)
        peers.append(peer)
        node_add(name="pacs", ae_title="PEER", host="127.0.0.1", port=peer.port,
                 receives_exports=True, commit_exports=True, can_query=False)
        return peer

    yield start
    for peer in peers:
        peer.close()


@pytest.mark.parametrize("report_on", ["same", "new"])
def test_an_export_is_done_once_the_node_committed_it(archive_peer: Any,
                                                      report_on: str) -> None:
    peer = archive_peer(report_on=report_on)
    record, summary = stored(2)  # a session's two records
    jobs = [export_enqueue(instance=record)[0], export_enqueue(instance=summary)[0]]
    output = drain()
    assert "2 sent, 0 not sent" in output, output
    assert len(peer.requests) == 1  # one request for what was sent together

    def committed() -> None:
        for job in jobs:
            job.refresh_from_db()
            assert (job.status, job.commitment) == (ExportJob.Status.DONE,
                                                    ExportJob.Commitment.COMMITTED)
    eventually(committed, timeout=30)
    request = CommitmentRequest.objects.get(direction=CommitmentRequest.Direction.SENT)
    assert (request.status, request.via, request.transaction_uid) == (
        CommitmentRequest.Status.COMMITTED, report_on, peer.requests[0])
    assert jobs[0].commitment_request == request and jobs[0].committed_at is not None


def test_an_export_the_node_does_not_hold_is_sent_again(archive_peer: Any, settings) -> None:  # type: ignore[no-untyped-def]
    peer = archive_peer(report_on="same")
    (instance,) = stored()
    (job,) = export_enqueue(instance=instance)
    worker = "test-worker"
    sent = export_process(worker=worker)
    assert sent is not None and sent.status == ExportJob.Status.COMMITTING
    assert sent.commitment == ExportJob.Commitment.AWAITED
    peer.forget.add(instance.sop_instance_uid)  # it lost it after answering the C-STORE
    export_commit_process(worker=worker)
    job.refresh_from_db()
    assert (job.status, job.commitment, job.attempts) == (
        ExportJob.Status.PENDING, ExportJob.Commitment.REFUSED, 1)
    assert "PEER did not commit it (0x0112 no such object instance)" in job.last_error
    assert job.next_attempt_at > timezone.now()  # backoff (RV_EXPORT_BASE_DELAY)
    request = job.commitment_request
    assert request is not None and request.status == CommitmentRequest.Status.FAILURES

    peer.forget.clear()
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert "1 sent, 0 not sent" in drain()
    job.refresh_from_db()
    assert (job.status, job.commitment, job.attempts, job.commit_attempts) == (
        ExportJob.Status.DONE, ExportJob.Commitment.COMMITTED, 2, 2)


def test_a_node_that_never_reports_is_asked_again_then_the_export_fails(
        archive_peer: Any, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_EXPORT_MAX_ATTEMPTS = 2
    settings.RV_COMMIT_REPORT_WAIT = 0.2
    peer = archive_peer(report_on="never")
    (instance,) = stored()
    (job,) = export_enqueue(instance=instance)
    drain()
    job.refresh_from_db()
    assert (job.status, job.commit_attempts) == (ExportJob.Status.COMMITTING, 1)
    assert job.next_attempt_at > timezone.now()  # waits RV_COMMIT_REPORT_TIMEOUT for it
    for _ in range(2):
        ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        drain()
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "did not report Storage Commitment after 2 requests" in job.last_error
    assert [r.status for r in CommitmentRequest.objects.order_by("pk")] == [
        CommitmentRequest.Status.EXPIRED, CommitmentRequest.Status.EXPIRED]
    assert len(peer.requests) == 2


def test_a_report_from_another_node_or_for_no_request_is_refused(
        archive_peer: Any, settings) -> None:  # type: ignore[no-untyped-def]
    from dicom_net.commitment import CommitmentError, Result
    from dicom_net.commitment_scu import commitment_result_record

    settings.RV_COMMIT_REPORT_WAIT = 0.2
    peer = archive_peer(report_on="never")
    (instance,) = stored()
    export_enqueue(instance=instance)
    drain()
    uid = peer.requests[0]
    with pytest.raises(CommitmentError) as other:
        commitment_result_record(result=Result(uid, 1, [ref(instance)], []), peer_ae="EVIL",
                                 via="new")
    assert other.value.status == 0x0124
    with pytest.raises(CommitmentError) as unknown:
        commitment_result_record(result=Result(generate_uid(), 1, [ref(instance)], []),
                                 peer_ae="PEER", via="new")
    assert unknown.value.status == 0x0115
    assert ExportJob.objects.get().status == ExportJob.Status.COMMITTING


# --- Orthanc -----------------------------------------------------------------------------

def orthanc_node(peer: Orthanc, **roles: bool) -> None:
    node_add(name="orthanc", ae_title="ORTHANC", host="127.0.0.1", port=peer.dicom_port,
             can_query=False, **roles)


def instances_body(refs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"DicomInstances": [{"SOPClassUID": c, "SOPInstanceUID": u} for c, u in refs]}


def test_orthanc_asks_verity_to_commit(orthanc: Orthanc) -> None:
    orthanc_node(orthanc)  # the store role: it may ask
    good, damaged = stored(2)
    damage(damaged)
    missing = (CTImageStorage, generate_uid())

    asked = orthanc.post("/modalities/verity/storage-commitment", instances_body([ref(good)]))
    report = orthanc.commitment(asked["ID"])
    assert (report["Status"], report["RemoteAET"]) == ("Success", "RV_SCP")
    assert [(i["SOPClassUID"], i["SOPInstanceUID"]) for i in report["Success"]] == [ref(good)]
    assert report["Failures"] == []

    asked = orthanc.post("/modalities/verity/storage-commitment",
                         instances_body([ref(good), ref(damaged), missing]))
    report = orthanc.commitment(asked["ID"])
    assert report["Status"] == "Failure"
    assert [i["SOPInstanceUID"] for i in report["Success"]] == [good.sop_instance_uid]
    assert {f["SOPInstanceUID"]: f["FailureReason"] for f in report["Failures"]} == {
        damaged.sop_instance_uid: 0x0110, missing[1]: 0x0112}
    for request in CommitmentRequest.objects.all():
        done = settled(request.transaction_uid)
        assert (done.status, done.peer_ae) == (CommitmentRequest.Status.REPORTED, "ORTHANC")


def record_a_session() -> list[ExportJob]:
    """A fraction recorded at the console: its RT Beams Treatment Record and the plan's new
    RT Treatment Summary Record, queued for export in the session's transaction."""
    from django.contrib.auth.models import Group, User

    from rv.services.plans import plan_approve

    physicist, therapist = (User.objects.create_user(username=role, password=PASSWORD)
                            for role in ("physicist", "therapist"))
    for user in (physicist, therapist):  # the role groups: flushed by transactional tests
        user.groups.add(Group.objects.get_or_create(name=user.username)[0])
    plan = plan_approve(plan=receive_plan(), user=physicist, password=PASSWORD)
    beams = [BeamInput(beam=beam, delivered_meterset=beam.fraction_refs.get().meterset)
             for beam in plan.beams.order_by("number")]
    session_record(plan=plan, machine=plan.beams.first().machine, beams=beams,
                   recorded_by=therapist, now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    return list(ExportJob.objects.select_related("instance").order_by("pk"))


def test_a_sessions_records_exported_to_orthanc_are_committed(orthanc: Orthanc) -> None:
    orthanc_node(orthanc, receives_exports=True, commit_exports=True)
    jobs = record_a_session()
    assert len(jobs) == 2
    output = drain()
    assert "2 sent, 0 not sent" in output, output

    def committed() -> None:  # Orthanc reports on an association it opens to Verity
        for job in jobs:
            job.refresh_from_db()
            assert (job.status, job.commitment) == (ExportJob.Status.DONE,
                                                    ExportJob.Commitment.COMMITTED)
    eventually(committed, timeout=60)
    request = CommitmentRequest.objects.get(direction=CommitmentRequest.Direction.SENT)
    assert (request.status, request.via, request.event_type) == (
        CommitmentRequest.Status.COMMITTED, "new", 1)
    assert sorted(map(tuple, request.committed)) == sorted(ref(j.instance) for j in jobs)
    for job in jobs:
        assert orthanc.instance_id(job.instance.sop_instance_uid) is not None


def test_an_export_orthanc_lost_stays_unconfirmed_and_is_retried(orthanc: Orthanc) -> None:
    orthanc_node(orthanc, receives_exports=True, commit_exports=True)
    (instance,) = stored()
    (job,) = export_enqueue(instance=instance)
    worker = "test-worker"
    export_process(worker=worker)  # Orthanc answered the C-STORE ...
    lost = orthanc.instance_id(instance.sop_instance_uid)
    assert lost is not None
    orthanc.delete(f"/instances/{lost}")  # ... and lost the instance before committing
    export_commit_process(worker=worker)

    def refused() -> None:
        job.refresh_from_db()
        assert (job.status, job.commitment) == (ExportJob.Status.PENDING,
                                                ExportJob.Commitment.REFUSED)
    eventually(refused, timeout=60)
    assert "ORTHANC did not commit it (0x0112 no such object instance)" in job.last_error
    assert job.next_attempt_at > timezone.now()  # retried after the backoff
    assert job.commitment_request is not None
    assert job.commitment_request.status == CommitmentRequest.Status.FAILURES

    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())  # time passes
    assert "1 sent, 0 not sent" in drain()

    def committed() -> None:
        job.refresh_from_db()
        assert (job.status, job.commitment, job.attempts, job.commit_attempts) == (
            ExportJob.Status.DONE, ExportJob.Commitment.COMMITTED, 2, 2)
    eventually(committed, timeout=60)
    assert orthanc.instance_id(instance.sop_instance_uid) is not None
