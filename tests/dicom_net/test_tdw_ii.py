"""Issue 13: Verity as IHE-RO TDW-II Treatment Management System, driven over real
associations by a simulated Treatment Delivery Device (tests/dicom_net/tdd.py): the whole
flow RO-58..RO-65, the state table with both Requested SOP Classes, matching, one lock for
the console and the devices, partial delivery and its continuation, a plan revised while
scheduled, and DCMTK's movescu retrieving the delivery instruction."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from pydicom import dcmread
from pydicom.uid import RTBeamsTreatmentRecordStorage
from pynetdicom.sop_class import (
    RTBeamsDeliveryInstructionStorage,
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
)

from archive.models import Instance
from rv.errors import Conflict
from rv.history import history_deliveries
from rv.ingest import object_receive
from rv.models import AuditEvent, DeviceRecord, Plan, Session, Workitem
from rv.selectors import plan_sessions
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from rv.services.workitems import workitem_review
from tests.conftest import free_port, need_tool
from tests.dicom_net.tdd import (
    Tdd,
    cancel_info,
    final_update,
    new_transaction_uid,
    progress,
    worklist_query,
)
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10, vmat_plan
from tests.rv.records import beams_record
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db(transaction=True)
MU = 251.0  # beam 1 of the test plan


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def clinic(live_scp: tuple[str, int]) -> Iterator[dict[str, object]]:
    """An approved VMAT plan on a TDW-II machine with two fractions scheduled from today, and
    a device (its storage SCP registered as a C-MOVE destination)."""
    physicist = _user("phoebe", "physicist")
    plan = plan_approve(plan=receive_plan(fractions=5), user=physicist, password=PASSWORD)
    machine = machine_of(plan)
    machine.tdw_delivery = True
    machine.save()
    therapist = _user("theo", "therapist")
    appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(),
                          user=therapist, count=2, weekdays=tuple(range(7)))
    tdd = Tdd("LINAC1", live_scp)
    tdd.start_storage()
    try:
        yield {"plan": plan, "machine": machine, "tdd": tdd, "physicist": physicist,
               "therapist": therapist, "scp": live_scp}
    finally:
        tdd.stop()


def _today_range() -> str:
    day = timezone.localdate()
    return f"{day:%Y%m%d}0000-{day:%Y%m%d}2359"


def _step(plan: Plan, fraction: int = 1) -> Workitem:
    return Workitem.objects.get(plan=plan, fraction_number=fraction,
                                state__in=["SCHEDULED", "IN PROGRESS"])


def _record(plan: Plan, *, fraction: int = 1, delivered: float = MU,
            termination: str = "NORMAL", specified: float = MU, kind: str = "TREATMENT"):  # type: ignore[no-untyped-def]
    now = timezone.localtime()
    return beams_record(plan=plan, fraction=fraction, date=f"{now:%Y%m%d}",
                        time=f"{now:%H%M%S}", beams=[{
                            "beam": 1, "delivered": delivered, "specified": specified,
                            "termination": termination, "type": kind}])


def _outputs(ds) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [(ds.StudyInstanceUID, ds.SeriesInstanceUID, RTBeamsTreatmentRecordStorage,
             ds.SOPInstanceUID)]


def test_a_device_treats_a_fraction_through_the_whole_flow(clinic) -> None:  # type: ignore[no-untyped-def]
    plan, tdd = clinic["plan"], clinic["tdd"]
    assert isinstance(plan, Plan) and isinstance(tdd, Tdd)
    # RO-58: the worklist for this machine, today
    found, final = tdd.find(worklist_query(machine="TrueBeam1", start=_today_range()))
    assert final == 0x0000 and len(found) == 1
    item = found[0]
    step = _step(plan)
    assert item.SOPInstanceUID == step.sop_instance_uid
    assert item.InputReadinessState == "READY"
    assert item.ProcedureStepLabel == f"Fraction 1 of {plan.label}"
    assert "TransactionUID" not in item
    assert "ScheduledProcedureStepPriority" not in item  # only what was asked for
    params = {p.ConceptNameCodeSequence[0].CodeValue: p for p in
              item.ScheduledProcessingParametersSequence}
    assert params["121740"].TextValue == "TREATMENT"
    assert params["2018001"].TextValue == plan.label
    assert int(params["2018002"].NumericValue) == 1
    assert int(params["2018003"].NumericValue) == 5
    inputs = {i.ReferencedSOPSequence[0].ReferencedSOPClassUID:
              i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
              for i in item.InputInformationSequence}
    assert inputs[plan.sop_class_uid] == plan.sop_instance_uid
    rtbdi_uid = inputs[RTBeamsDeliveryInstructionStorage]
    assert all(i.DICOMRetrievalSequence[0].RetrieveAETitle == "RV_SCP"
               for i in item.InputInformationSequence)
    # RO-59 / RO-61: retrieve the plan and the delivery instruction
    study = item.InputInformationSequence[0].StudyInstanceUID
    assert tdd.move(study_uid=study, sop_uids=list(inputs.values())) == 0x0000
    got = {ds.SOPInstanceUID: ds for ds in tdd.received}
    assert set(got) == set(inputs.values())
    rtbdi = got[rtbdi_uid]
    assert rtbdi.Modality == "PLAN"
    assert rtbdi.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.sop_instance_uid
    task = rtbdi.BeamTaskSequence[0]
    assert (task.TreatmentDeliveryType, int(task.CurrentFractionNumber),
            int(task.ReferencedBeamNumber)) == ("TREATMENT", 1, 1)
    # RO-60: claim
    txn = new_transaction_uid()
    assert tdd.action(item.SOPInstanceUID, "IN PROGRESS", txn).Status == 0x0000
    step.refresh_from_db()
    assert (step.state, step.performer_ae, step.transaction_uid) == ("IN PROGRESS", "LINAC1", txn)
    # the console cannot check or record the claimed fraction
    with pytest.raises(Conflict, match="being delivered by LINAC1"):
        session_record(plan=plan, machine=clinic["machine"], recorded_by=clinic["therapist"],
                       identity_confirmed=True,
                       beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=MU)])
    # RO-62: progress, shown on the step
    status, attrs = tdd.nset(item.SOPInstanceUID, progress(txn, percent=40, beam=1))
    assert status.Status == 0x0000 and not attrs
    step.refresh_from_db()
    assert (step.progress_percent, step.progress_beam) == (40.0, 1)
    # N-GET never tells the Transaction UID
    status, got_ds = tdd.nget(item.SOPInstanceUID, [0x00741000, 0x00081195, 0x00741002])
    assert status.Status == 0x0000 and got_ds is not None
    assert got_ds.ProcedureStepState == "IN PROGRESS" and "TransactionUID" not in got_ds
    # RO-63: the record
    record = _record(plan)
    assert tdd.store(record) == 0x0000
    device = DeviceRecord.objects.get(instance__sop_instance_uid=record.SOPInstanceUID)
    assert device.workitem == step and device.status == "CREATED"
    # RO-64 final update, RO-65 completed
    start = timezone.localtime() - timedelta(minutes=5)
    status, _ = tdd.nset(item.SOPInstanceUID, final_update(
        txn, machine="TrueBeam1", start=start, end=timezone.localtime(),
        outputs=_outputs(record)))
    assert status.Status == 0x0000
    assert tdd.action(item.SOPInstanceUID, "COMPLETED", txn).Status == 0x0000
    step.refresh_from_db()
    assert step.state == "COMPLETED" and step.review_reasons == [] and not step.flagged
    # the session is on the chart and in the history
    session = Session.objects.get(plan=plan, fraction_number=1)
    assert session.content_origin == "DEVICE" and session.fraction_complete
    assert [s.pk for s in plan_sessions(plan=plan)] == [session.pk]
    assert history_deliveries().filter(session=session).count() == 1
    assert AuditEvent.objects.filter(action="workitem.claim", username="LINAC1").exists()
    assert AuditEvent.objects.filter(action="workitem.completed").exists()
    # the worklist moves on: fraction 2's step is there, and the finished one answers B306
    again = tdd.action(item.SOPInstanceUID, "COMPLETED", txn)
    assert again.Status == 0xB306


def test_two_devices_claim_one_step_one_gets_it(clinic) -> None:  # type: ignore[no-untyped-def]
    plan, scp = clinic["plan"], clinic["scp"]
    uid = _step(plan).sop_instance_uid
    devices = [Tdd("LINAC1", scp), Tdd("LINAC2", scp)]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def claim(device: Tdd) -> None:
        barrier.wait()
        results.append(int(device.action(uid, "IN PROGRESS", new_transaction_uid()).Status))

    threads = [threading.Thread(target=claim, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0x0000, 0xC302]
    assert Workitem.objects.filter(plan=plan, state="IN PROGRESS").count() == 1


def test_a_step_checked_at_the_console_cannot_be_claimed(clinic) -> None:  # type: ignore[no-untyped-def]
    from rv.services.setup_check import setup_check
    from rv.treatment_request import SessionRequest

    plan, tdd = clinic["plan"], clinic["tdd"]
    setup_check(request=SessionRequest(plan_id=plan.pk, machine="TrueBeam1",
                                       identity_confirmed=True),
                checked_by=clinic["therapist"])
    status = tdd.action(_step(plan).sop_instance_uid, "IN PROGRESS", new_transaction_uid())
    assert status.Status == 0xC302
    assert "console" in str(status.ErrorComment)
    assert _step(plan).state == "SCHEDULED"


@pytest.mark.parametrize("sop_class", [UnifiedProcedureStepPush, UnifiedProcedureStepPull],
                         ids=["push", "pull"])
def test_the_state_table_over_the_network(clinic, sop_class) -> None:  # type: ignore[no-untyped-def]
    """PS3.4 Table CC.1.1-2, each row, whichever Requested SOP Class the device uses."""
    plan, tdd = clinic["plan"], clinic["tdd"]
    uid = _step(plan).sop_instance_uid

    def act(state: str, txn: str) -> int:
        return int(tdd.action(uid, state, txn, sop_class=sop_class).Status)

    txn = new_transaction_uid()
    assert int(tdd.action("1.2.3.4", "IN PROGRESS", txn, sop_class=sop_class).Status) == 0xC307
    assert act("SCHEDULED", txn) == 0xC303
    assert act("COMPLETED", txn) == 0xC310       # not yet IN PROGRESS
    assert act("CANCELED", txn) == 0xC310
    assert act("IN PROGRESS", txn) == 0x0000
    assert act("IN PROGRESS", new_transaction_uid()) == 0xC302
    assert act("SCHEDULED", txn) == 0xC303
    assert act("COMPLETED", new_transaction_uid()) == 0xC301
    assert act("COMPLETED", "") == 0xC301
    assert act("COMPLETED", txn) == 0xC304       # no final update yet: strict by default
    status, _ = tdd.nset(uid, cancel_info(txn, when=timezone.localtime(), reason="Patient ill"),
                         sop_class=sop_class)
    assert status.Status == 0x0000
    assert act("CANCELED", txn) == 0x0000
    assert act("CANCELED", txn) == 0xB304
    assert act("COMPLETED", txn) == 0xC300
    assert act("IN PROGRESS", txn) == 0xC300
    step = Workitem.objects.get(sop_instance_uid=uid)
    assert step.state == "CANCELED" and "Patient ill" in step.cancel_reason
    # nothing was delivered: the fraction is still due, so a new step replaces the cancelled one
    new = _step(plan)
    assert new.replaces == step and new.delivery_type == "TREATMENT"


def test_n_set_rules(clinic) -> None:  # type: ignore[no-untyped-def]
    plan, tdd = clinic["plan"], clinic["tdd"]
    uid = _step(plan).sop_instance_uid
    txn = new_transaction_uid()
    # a SCHEDULED step: no Transaction UID yet (C310), and the schedule is Verity's (0x0124)
    assert tdd.nset(uid, progress(txn, percent=1))[0].Status == 0xC310
    assert tdd.nset(uid, progress("", percent=1))[0].Status == 0x0124
    assert tdd.action(uid, "IN PROGRESS", txn).Status == 0x0000
    assert tdd.nset(uid, progress(new_transaction_uid(), percent=5))[0].Status == 0xC301
    # Procedure Step State cannot be set; nothing of the request is applied
    bad = progress(txn, percent=50, beam=1)
    bad.ProcedureStepState = "COMPLETED"
    status, _ = tdd.nset(uid, bad)
    assert status.Status not in (0x0000,) and status.Status < 0xFF00
    step = Workitem.objects.get(sop_instance_uid=uid)
    assert step.state == "IN PROGRESS" and step.progress_percent is None
    # command elements inside the data set are ignored, not refused
    ok = progress(txn, percent=60, beam=1)
    ok.add_new(0x00000000 + 0x0100, "US", 0x0120)  # (0000,0100) Command Field
    assert tdd.nset(uid, ok)[0].Status == 0x0000
    step.refresh_from_db()
    assert step.progress_percent == 60.0


def test_a_partial_delivery_yields_a_continuation_after_review(clinic) -> None:  # type: ignore[no-untyped-def]
    plan, tdd = clinic["plan"], clinic["tdd"]
    uid = _step(plan).sop_instance_uid
    txn = new_transaction_uid()
    assert tdd.action(uid, "IN PROGRESS", txn).Status == 0x0000
    record = _record(plan, delivered=100.0, termination="MACHINE")
    assert tdd.store(record) == 0x0000
    now = timezone.localtime()
    assert tdd.nset(uid, final_update(txn, machine="TrueBeam1", start=now, end=now,
                                      outputs=_outputs(record)))[0].Status == 0x0000
    assert tdd.nset(uid, cancel_info(txn, when=now, reason="Machine interlock"))[0].Status == 0
    assert tdd.action(uid, "CANCELED", txn).Status == 0x0000
    cont = _step(plan)
    assert cont.delivery_type == "CONTINUATION" and cont.fraction_number == 1
    assert cont.readiness == "INCOMPLETE" and cont.flagged
    assert any("MACHINE" in r for r in cont.review_reasons)
    # not claimable before the review
    assert tdd.action(cont.sop_instance_uid, "IN PROGRESS", new_transaction_uid()).Status \
        == 0x0110
    workitem_review(workitem=cont, user=clinic["physicist"], password=PASSWORD,
                    comment="Interlock cleared by service; continue.")
    found, _ = tdd.find(worklist_query(machine="TrueBeam1", start=_today_range()))
    assert [f.SOPInstanceUID for f in found] == [cont.sop_instance_uid]
    assert found[0].InputReadinessState == "READY"
    params = {p.ConceptNameCodeSequence[0].CodeValue: p for p in
              found[0].ScheduledProcessingParametersSequence}
    assert params["121740"].TextValue == "CONTINUATION"
    instruction = dcmread(Path(_archive_path(cont.instruction)))
    task = instruction.BeamTaskSequence[0]
    assert task.TreatmentDeliveryType == "CONTINUATION"
    assert (float(task.ContinuationStartMeterset), float(task.ContinuationEndMeterset)) == (
        100.0, MU)
    # the continuation delivers the rest and completes the fraction
    txn2 = new_transaction_uid()
    assert tdd.action(cont.sop_instance_uid, "IN PROGRESS", txn2).Status == 0x0000
    rest = _record(plan, delivered=151.0, specified=MU, kind="CONTINUATION")
    assert tdd.store(rest) == 0x0000
    now = timezone.localtime()
    assert tdd.nset(cont.sop_instance_uid, final_update(
        txn2, machine="TrueBeam1", start=now, end=now, outputs=_outputs(rest)))[0].Status == 0
    assert tdd.action(cont.sop_instance_uid, "COMPLETED", txn2).Status == 0x0000
    sessions = Session.objects.filter(plan=plan, fraction_number=1).order_by("id")
    assert [s.continuation for s in sessions] == [False, True]
    assert sessions.last().fraction_complete  # type: ignore[union-attr]


def _archive_path(instance: Instance | None) -> str:
    from archive import storage

    assert instance is not None
    return str(storage.absolute_path(instance.path))


def test_a_plan_revised_while_scheduled_gets_new_steps(clinic) -> None:  # type: ignore[no-untyped-def]
    plan, tdd = clinic["plan"], clinic["tdd"]
    old = list(Workitem.objects.filter(plan=plan, state="SCHEDULED").order_by("fraction_number"))
    assert [w.fraction_number for w in old] == [1, 2]
    revised = object_receive(data=part10(vmat_plan(
        arcs=1, control_points=3, leaf_pairs=2, fractions=5, meterset=240.0)),
        calling_ae="TPS")
    new_plan = Plan.objects.get(instance=revised.instance)
    assert new_plan.previous_revision_id == plan.pk
    # a received revision changes nothing until it is approved
    assert Workitem.objects.filter(plan=plan, state="SCHEDULED").count() == 2
    plan_approve(plan=new_plan, user=clinic["physicist"], password=PASSWORD)
    for w in old:
        w.refresh_from_db()
        assert w.state == "CANCELED" and "revision" in w.cancel_reason
    new = list(Workitem.objects.filter(state="SCHEDULED").order_by("fraction_number"))
    assert [(w.plan_id, w.fraction_number) for w in new] == [(new_plan.pk, 1), (new_plan.pk, 2)]
    assert [w.replaces_id for w in new] == [w.pk for w in old]
    # a device holding the old UID is told it may no longer work on it
    assert tdd.action(old[0].sop_instance_uid, "IN PROGRESS", new_transaction_uid()).Status \
        == 0xC300


def test_movescu_retrieves_the_delivery_instruction(clinic, storescp_peer) -> None:  # type: ignore[no-untyped-def]
    movescu = need_tool("movescu")
    plan, (host, port) = clinic["plan"], clinic["scp"]
    step = _step(plan)
    assert step.instruction is not None
    peer_port, folder = storescp_peer("DCMTKPEER")
    from dicom_net.models import Node

    Node.objects.create(name="dcmtk-peer", ae_title="DCMTKPEER", host="127.0.0.1",
                        port=peer_port, move_destination=True)
    study = step.instruction.series.study.study_instance_uid
    done = subprocess.run([
        movescu, "-S", "-aet", "DCMTKPEER", "-aec", "RV_SCP", "-aem", "DCMTKPEER",
        "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={study}",
        "-k", f"SOPInstanceUID={step.instruction.sop_instance_uid}", host, str(port)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    files = list(folder.iterdir())
    assert len(files) == 1
    ds = dcmread(files[0])
    assert ds.SOPClassUID == RTBeamsDeliveryInstructionStorage
    assert ds.SOPInstanceUID == step.instruction.sop_instance_uid
    assert free_port()  # the peer's port was a real one
