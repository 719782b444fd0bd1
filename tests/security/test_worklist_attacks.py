"""Attacks on the TDW-II worklist (issue 13), each against Verity's SCP in-process: a peer
that is no worklist performer, a device claiming another machine's step, an oversized
N-SET, malformed keys and actions, N-CREATE. Each gets a clear failure status with an Error
Comment; nothing is stored, nothing crashes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from pydicom.dataset import Dataset

from dicom_net.models import Node
from rv.models import AuditEvent, TreatmentMachine, Workitem
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from tests.dicom_net.tdd import Tdd, new_transaction_uid, progress, worklist_query
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.security.conftest import StartScp

pytestmark = pytest.mark.django_db(transaction=True)


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _step() -> Workitem:
    plan = plan_approve(plan=receive_plan(fractions=5), user=_user("phoebe", "physicist"),
                        password=PASSWORD)
    machine = machine_of(plan)
    machine.tdw_delivery = True
    machine.save()
    appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(), count=1,
                          weekdays=tuple(range(7)), user=_user("theo", "therapist"))
    return Workitem.objects.get(plan=plan)


def _node(ae: str, **roles: object) -> Node:
    return Node.objects.create(name=ae.lower(), ae_title=ae, host="127.0.0.1", port=104,
                               **roles)


def test_a_peer_without_the_worklist_role_cannot_claim_or_update(start_scp: StartScp) -> None:
    step = _step()
    _node("PACS1", can_query=True)
    port = start_scp(RV_ACCEPT_UNKNOWN_AE=False)
    pacs = Tdd("PACS1", ("127.0.0.1", port))
    found, final = pacs.find(worklist_query())
    assert final == 0x0000 and len(found) == 1  # querying is its right
    status = pacs.action(step.sop_instance_uid, "IN PROGRESS", new_transaction_uid())
    assert status.Status == 0x0124 and "worklist" in str(status.ErrorComment)
    assert pacs.nset(step.sop_instance_uid, progress("", percent=1))[0].Status == 0x0124
    step.refresh_from_db()
    assert step.state == "SCHEDULED"


def test_a_device_cannot_claim_another_machines_step(start_scp: StartScp) -> None:
    step = _step()
    other = TreatmentMachine.objects.create(name="Linac9")
    _node("LINAC9", ups_performer=True, treatment_machine=other)
    port = start_scp(RV_ACCEPT_UNKNOWN_AE=False)
    status = Tdd("LINAC9", ("127.0.0.1", port)).action(
        step.sop_instance_uid, "IN PROGRESS", new_transaction_uid())
    assert status.Status == 0x0124 and "another machine" in str(status.ErrorComment)
    assert Workitem.objects.get(pk=step.pk).state == "SCHEDULED"


def test_an_oversized_n_set_is_refused_and_nothing_stored(start_scp: StartScp) -> None:
    step = _step()
    port = start_scp(RV_UPS_MAX_DATASET=64 * 1024)
    tdd = Tdd("LINAC1", ("127.0.0.1", port))
    txn = new_transaction_uid()
    assert tdd.action(step.sop_instance_uid, "IN PROGRESS", txn).Status == 0x0000
    before = Workitem.objects.get(pk=step.pk).dataset
    big = progress(txn, percent=10, description="x" * 1024)
    big.CommentsOnTheScheduledProcedureStep = "y" * 10240  # LT: up to 10240 characters
    big.ProcedureStepProgressInformationSequence[0].ProcedureStepProgressDescription = "z" * 64
    for i in range(10):
        item = Dataset()
        item.ProcedureStepProgressDescription = "w" * 64
        item.ProcedureStepProgress = i
        big.ProcedureStepProgressInformationSequence.append(item)
    big.ReasonForCancellation = "r" * 1024
    big.add_new(0x00741238, "LT", "q" * 10240)  # replaces ReasonForCancellation, larger
    filler = Dataset()
    filler.TextValue = "t" * 10240
    big.ScheduledProcessingParametersSequence = [filler] * 8  # ~80 kB
    status, _ = tdd.nset(step.sop_instance_uid, big)
    assert status.Status == 0x0110 and "too large" in str(status.ErrorComment)
    assert Workitem.objects.get(pk=step.pk).dataset == before
    assert not AuditEvent.objects.filter(action="workitem.update").exists()


def test_malformed_keys_actions_and_n_create_get_clear_failures(start_scp: StartScp) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import UnifiedProcedureStepPush

    step = _step()
    port = start_scp()
    tdd = Tdd("LINAC1", ("127.0.0.1", port))
    bad = worklist_query()
    bad.ScheduledProcedureStepStartDateTime = "2026-13-45"
    found, final = tdd.find(bad)
    assert found == [] and final == 0xA900
    assert tdd.action(step.sop_instance_uid, "DONE", new_transaction_uid()).Status == 0x0115
    assert tdd.action(step.sop_instance_uid, "IN PROGRESS", "not a uid").Status == 0xC301
    assert tdd.action("1.2.3.999", "IN PROGRESS", new_transaction_uid()).Status == 0xC307
    ae = AE(ae_title="LINAC1")
    ae.add_requested_context(UnifiedProcedureStepPush)
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    try:
        ds = Dataset()
        ds.ProcedureStepState = "SCHEDULED"
        status, _ = assoc.send_n_create(ds, UnifiedProcedureStepPush, "1.2.3.4.5")
        assert status.Status == 0x0124
        status, _ = assoc.send_n_action(ds, 7, UnifiedProcedureStepPush,
                                        step.sop_instance_uid)
        assert status.Status == 0x0123
    finally:
        assoc.release()
    assert Workitem.objects.count() == 1 and Workitem.objects.get().state == "SCHEDULED"
