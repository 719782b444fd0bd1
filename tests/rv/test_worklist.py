"""Issue 13: the worklist kept true by the services (no network here; tests/dicom_net/
test_tdw_ii.py drives it over DICOM): steps made from the schedule for TDW-II machines,
cancelled and re-issued when the plan or the appointment changes, never changed under a
device; the console's lock against a claim; a physicist's release and review; final states
strict and lenient; missing records flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from rv.errors import Conflict, PermissionDenied
from rv.ingest import object_receive
from rv.models import AuditEvent, Plan, TreatmentMachine, Workitem
from rv.services.esign import SignatureRefused
from rv.services.plans import plan_approve, plan_hold, plan_release_hold, plan_retire
from rv.services.schedule import appointment_cancel, appointment_move, appointments_schedule
from rv.services.workitem_actions import (
    workitem_cancel_request,
    workitem_state_change,
    workitem_update,
    worklist_find,
)
from rv.services.workitems import machine_tdw_set, workitem_release, workitem_review
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10
from tests.rv.records import beams_record
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db
ALL_DAYS = tuple(range(7))


@pytest.fixture
def setup(physicist, therapist):  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(fractions=5), user=physicist, password=PASSWORD)
    machine = machine_of(plan)
    machine_tdw_set(machine=machine, enabled=True, user=physicist)
    return plan, machine


def _schedule(plan: Plan, machine: TreatmentMachine, user, count: int = 2, start=None):  # type: ignore[no-untyped-def]
    return appointments_schedule(plan=plan, machine=machine, user=user, count=count,
                                 start=start or timezone.localdate(), weekdays=ALL_DAYS)


def _open(plan: Plan | None = None) -> list[Workitem]:
    qs = Workitem.objects.filter(state__in=["SCHEDULED", "IN PROGRESS"])
    if plan is not None:
        qs = qs.filter(plan=plan)
    return list(qs.order_by("fraction_number"))


def _claim(wi: Workitem, ae: str = "LINAC1") -> str:
    txn = str(generate_uid())
    answer = workitem_state_change(uid=wi.sop_instance_uid, requested="IN PROGRESS",
                                   transaction_uid=txn, calling_ae=ae)
    assert answer.status == 0x0000, answer.comment
    return txn


def test_scheduling_on_a_tdw_machine_makes_one_step_per_appointment(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    appointments = _schedule(plan, machine, therapist, count=3)
    steps = _open(plan)
    assert [(w.fraction_number, w.appointment_id) for w in steps] == [
        (a.fraction_number, a.pk) for a in appointments]
    assert all(w.instruction is not None for w in steps)
    # today and tomorrow READY; the day after waits ("ready the day before")
    assert [w.readiness for w in steps] == ["READY", "READY", "INCOMPLETE"]
    assert "the day before" in steps[2].readiness_reasons[0]
    assert AuditEvent.objects.filter(action="workitem.create").count() == 3


def test_a_machine_that_is_not_tdw_gets_no_worklist(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(fractions=5), user=physicist, password=PASSWORD)
    _schedule(plan, machine_of(plan), therapist)
    assert Workitem.objects.count() == 0


def test_hold_retire_and_release_keep_the_worklist_true(setup, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    before = _open(plan)
    plan_hold(plan=plan, user=physicist, reason="re-plan")
    for w in before:
        w.refresh_from_db()
        assert w.state == "CANCELED" and "on hold" in w.cancel_reason
    assert _open(plan) == []
    plan_release_hold(plan=plan, user=physicist)
    again = _open(plan)
    assert [w.fraction_number for w in again] == [1, 2]
    assert all(w.replaces is not None and w.replaces.state == "CANCELED" for w in again)
    plan_retire(plan=plan, user=physicist, reason="done")
    assert _open(plan) == []


def test_moving_and_cancelling_an_appointment(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    first, second = _schedule(plan, machine, therapist)
    old = _open(plan)[1]
    appointment_move(appointment=second, user=therapist, to=second.date + timedelta(days=3))
    old.refresh_from_db()
    assert old.state == "CANCELED" and "moved" in old.cancel_reason
    new = _open(plan)[1]
    assert new.replaces == old and new.readiness == "INCOMPLETE"
    appointment_cancel(appointment=first, user=therapist, reason="patient unwell")
    assert [w.fraction_number for w in _open(plan)] == [2]


def test_a_claimed_step_is_never_changed_under_the_device(setup, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first = _open(plan)[0]
    _claim(first)
    plan_hold(plan=plan, user=physicist, reason="question from the physician")
    first.refresh_from_db()
    assert first.state == "IN PROGRESS"  # the device holds it; the second step is cancelled
    assert [w.pk for w in _open(plan)] == [first.pk]


def test_the_console_and_a_device_never_hold_one_fraction(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first = _open(plan)[0]
    _claim(first)
    with pytest.raises(Conflict, match="LINAC1"):
        session_record(plan=plan, machine=machine, recorded_by=therapist,
                       identity_confirmed=True,
                       beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=251.0)])


def test_the_console_recording_a_fraction_ends_its_step(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first = _open(plan)[0]
    session_record(plan=plan, machine=machine, recorded_by=therapist, identity_confirmed=True,
                   beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=251.0)])
    first.refresh_from_db()
    assert first.state == "CANCELED" and "done" in first.cancel_reason
    assert [w.fraction_number for w in _open(plan)] == [2]


def test_a_physicist_releases_a_stale_claim(setup, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first = _open(plan)[0]
    _claim(first)
    with pytest.raises(PermissionDenied):
        workitem_release(workitem=first, user=therapist, password=PASSWORD, reason="stale")
    with pytest.raises(SignatureRefused):
        workitem_release(workitem=first, user=physicist, password="wrong", reason="stale")
    workitem_release(workitem=first, user=physicist, password=PASSWORD,
                     reason="the console crashed")
    first.refresh_from_db()
    assert first.state == "CANCELED" and "the console crashed" in first.cancel_reason
    event = AuditEvent.objects.filter(action="workitem.cancel").latest("id")
    assert event.user == physicist
    # the fraction is free again: a new step, and the console may record it
    assert _open(plan)[0].replaces == first
    session_record(plan=plan, machine=machine, recorded_by=therapist, identity_confirmed=True,
                   beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=251.0)])


def _final_update(wi: Workitem, txn: str, outputs: list[str]) -> None:
    mod = Dataset()
    mod.TransactionUID = txn
    item = Dataset()
    station = Dataset()
    station.CodeValue, station.CodingSchemeDesignator, station.CodeMeaning = (
        "TrueBeam1", "99IHERO2008", "TrueBeam1")
    item.PerformedStationNameCodeSequence = Sequence([station])
    now = timezone.localtime().strftime("%Y%m%d%H%M%S")
    item.PerformedProcedureStepStartDateTime = now
    item.PerformedProcedureStepEndDateTime = now
    wcode = Dataset()
    wcode.CodeValue, wcode.CodingSchemeDesignator, wcode.CodeMeaning = (
        "121726", "DCM", "RT Treatment with Internal Verification")
    item.PerformedWorkitemCodeSequence = Sequence([wcode])
    refs = []
    for uid in outputs:
        out = Dataset()
        out.TypeOfInstances = "DICOM"
        sop = Dataset()
        sop.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.4"
        sop.ReferencedSOPInstanceUID = uid
        out.ReferencedSOPSequence = Sequence([sop])
        refs.append(out)
    item.OutputInformationSequence = Sequence(refs)
    mod.UnifiedProcedureStepPerformedProcedureSequence = Sequence([item])
    answer = workitem_update(uid=wi.sop_instance_uid, modification=mod, calling_ae="LINAC1")
    assert answer.status == 0x0000, answer.comment


def test_final_state_strict_by_default_lenient_per_node_and_audited(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first, second = _open(plan)
    txn = _claim(first)
    strict = workitem_state_change(uid=first.sop_instance_uid, requested="COMPLETED",
                                   transaction_uid=txn, calling_ae="LINAC1")
    assert strict.status == 0xC304 and "Performed" in strict.comment
    lenient = workitem_state_change(uid=first.sop_instance_uid, requested="COMPLETED",
                                    transaction_uid=txn, calling_ae="LINAC1", lenient=True)
    assert lenient.status == 0x0000
    first.refresh_from_db()
    assert first.state == "COMPLETED" and first.lenient_supplied
    event = AuditEvent.objects.get(action="workitem.completed")
    assert event.details["lenient_supplied"] == first.lenient_supplied
    # COMPLETED with no record: flagged for a physicist, never silently ignored
    assert first.flagged and any("no treatment record" in r for r in first.review_reasons)


def test_a_referenced_record_that_never_arrived_is_flagged(setup, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first = _open(plan)[0]
    txn = _claim(first)
    now = timezone.localtime()
    record = beams_record(plan=plan, fraction=1, date=f"{now:%Y%m%d}", time=f"{now:%H%M%S}",
                          beams=[{"beam": 1, "delivered": 251.0}])
    object_receive(data=part10(record), calling_ae="LINAC1")
    ghost = str(generate_uid())
    _final_update(first, txn, [record.SOPInstanceUID, ghost])
    answer = workitem_state_change(uid=first.sop_instance_uid, requested="COMPLETED",
                                   transaction_uid=txn, calling_ae="LINAC1")
    assert answer.status == 0x0000
    first.refresh_from_db()
    assert first.flagged and any(ghost in r for r in first.review_reasons)
    workitem_review(workitem=first, user=physicist, password=PASSWORD,
                    comment="The machine resent it under another UID.")
    first.refresh_from_db()
    assert not first.flagged


def test_request_cancel_of_a_scheduled_step_and_of_a_claimed_one(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist)
    first, second = _open(plan)
    assert workitem_cancel_request(uid=second.sop_instance_uid, calling_ae="OIS2").status == 0
    second.refresh_from_db()
    assert second.state == "CANCELED"
    assert _open(plan)[1].replaces == second  # the appointment stands: a new step
    _claim(first)
    assert workitem_cancel_request(uid=first.sop_instance_uid, calling_ae="OIS2").status \
        == 0xC312
    assert workitem_cancel_request(uid=second.sop_instance_uid, calling_ae="OIS2").status \
        == 0xB304
    assert workitem_cancel_request(uid="1.2.3", calling_ae="OIS2").status == 0xC307


def test_worklist_find_matches_machine_state_and_day(setup, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = setup
    _schedule(plan, machine, therapist, count=3)
    day = timezone.localdate()

    def ask(**keys: object) -> list[Dataset]:
        q = Dataset()
        q.SOPInstanceUID = ""
        q.ProcedureStepState = keys.get("state", "")
        q.ScheduledProcedureStepStartDateTime = keys.get("start", "")
        station = Dataset()
        station.CodeValue = keys.get("machine", "")
        station.CodingSchemeDesignator = ""
        q.ScheduledStationNameCodeSequence = Sequence([station])
        return list(worklist_find(identifier=q))

    assert len(ask()) == 3
    assert len(ask(machine="TrueBeam1")) == 3
    assert ask(machine="OtherLinac") == []
    assert len(ask(start=f"{day:%Y%m%d}0000-{day:%Y%m%d}2359")) == 1
    assert len(ask(start=f"{day:%Y%m%d}-")) == 3
    assert len(ask(state="SCHEDULED")) == 3
    assert ask(state="COMPLETED") == []
    found = ask()[0]
    assert set(found.dir()) <= {"SOPInstanceUID", "ProcedureStepState",
                                "ScheduledProcedureStepStartDateTime",
                                "ScheduledStationNameCodeSequence", "SpecificCharacterSet"}
