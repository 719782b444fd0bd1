"""Treatment records from the machine (issue 8): matched to plan, beams and fraction; a
session created from them or reconciled with the one a therapist recorded; resending
changes nothing; a record for an unknown plan waits for a physicist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archive.models import Instance
from rv.errors import PermissionDenied
from rv.ingest import object_receive
from rv.models import AuditEvent, DeviceRecord, Plan, Session
from rv.selectors import delivered_dose_by_reference, plan_fractions_delivered
from rv.services.machine import device_record_assign
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10
from tests.rv.records import beams_record
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db
MU = 251.0  # beam 1 of the test plan


def approved(physicist, **kwargs) -> Plan:  # type: ignore[no-untyped-def]
    return plan_approve(plan=receive_plan(**kwargs), user=physicist, password=PASSWORD)


def send(ds) -> DeviceRecord | None:  # type: ignore[no-untyped-def]
    result = object_receive(data=part10(ds), calling_ae="LINAC1")
    return DeviceRecord.objects.filter(instance=result.instance).first()


def test_a_machine_record_with_no_session_creates_a_verified_device_session(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record = send(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU,
                                                  "gantry": 181.2}]))
    assert record is not None and record.status == "CREATED" and record.plan == plan
    session = record.session
    assert session is not None
    assert (session.content_origin, session.recorded_by, session.fraction_number) == (
        "DEVICE", None, 1)
    assert session.verification_status == "VERIFIED" and session.fraction_complete
    assert session.treated_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert delivered_dose_by_reference(plan=plan) == {1: 1.0}
    event = AuditEvent.objects.get(action="session.record")
    assert event.user is None and event.username == "LINAC1"
    assert event.details["content_origin"] == "DEVICE"
    assert AuditEvent.objects.filter(action="device_record.created").exists()
    # the machine's record is the session's record; Verity adds only the plan's new summary
    assert session.record_sop_instance_uid == record.instance.sop_instance_uid
    generated = Instance.objects.filter(source="generated")
    assert [i.series.modality for i in generated] == ["RTRECORD"]
    assert generated.get().sop_class_uid == "1.2.840.10008.5.1.4.1.1.481.7"  # the summary


def test_a_violation_in_a_machine_record_is_stored_not_verified_not_refused(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record = send(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU + 20,
                                                  "gantry": 200.0}]))
    assert record is not None and record.status == "CREATED"
    session = record.session
    assert session is not None and session.verification_status == "NOT_VERIFIED"
    assert session.beams.get().verification_status == "NOT_VERIFIED"
    rules = sorted(x["rule"] for x in record.violations)
    assert rules == ["machine_parameter", "meterset"]
    assert not session.overrides.exists()


def test_a_record_of_a_session_the_therapist_recorded_is_reconciled_and_flagged(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = approved(physicist)
    typed = session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                           identity_confirmed=True, now=datetime(2026, 3, 2, 9, 5, tzinfo=UTC),
                           beams=[BeamInput(beam=plan.beams.get(number=1),
                                            delivered_meterset=MU, gantry_angle=181.0)])
    record = send(beams_record(plan=plan, beams=[{
        "beam": 1, "delivered": 180.0, "termination": "MACHINE", "gantry": 181.6}]))
    assert record is not None and record.status == "RECONCILED" and record.session == typed
    fields = {(d["field"], d["recorded"], d["device"]) for d in record.differences}
    assert fields == {("delivered meterset", MU, 180.0),
                      ("termination status", "NORMAL", "MACHINE"),
                      ("gantry angle", 181.0, 181.6)}
    # Reconciling counts nothing twice: still one session, the dose the therapist recorded.
    assert Session.objects.filter(plan=plan).count() == 1
    assert delivered_dose_by_reference(plan=plan) == {1: 1.0}


def test_a_record_that_agrees_with_the_therapist_is_matched(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                   identity_confirmed=True, now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                   beams=[BeamInput(beam=plan.beams.get(number=1), delivered_meterset=MU)])
    record = send(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU + 0.01}]))
    assert record is not None and (record.status, record.differences) == ("MATCHED", [])


def test_a_partial_delivery_and_its_continuation_from_the_machine_add_up(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    partial = send(beams_record(plan=plan, beams=[{
        "beam": 1, "delivered": 100.0, "specified": MU, "termination": "OPERATOR"}]))
    assert partial is not None and partial.status == "CREATED" and partial.session
    assert not partial.session.fraction_complete and plan_fractions_delivered(plan=plan) == 0
    rest = send(beams_record(plan=plan, time="100000", beams=[{
        "beam": 1, "delivered": MU - 100.0, "specified": MU, "type": "CONTINUATION"}]))
    assert rest is not None and rest.status == "CREATED" and rest.continuation
    session = rest.session
    assert session is not None
    assert (session.fraction_number, session.continuation, session.fraction_complete) == (
        1, True, True)
    delivery = session.beams.get()
    assert (delivery.remaining_before, delivery.delivered_meterset) == (MU - 100.0, MU - 100.0)
    assert session.verification_status == "VERIFIED"
    assert plan_fractions_delivered(plan=plan) == 1
    assert delivered_dose_by_reference(plan=plan) == pytest.approx({1: 1.0})


def test_sending_the_same_record_again_changes_nothing(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    ds = beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU}])
    first = object_receive(data=part10(ds), calling_ae="LINAC1")
    counts = (Session.objects.count(), DeviceRecord.objects.count(), AuditEvent.objects.count())
    again = object_receive(data=part10(ds), calling_ae="LINAC1")
    assert (first.outcome, again.outcome) == ("stored", "duplicate")
    assert (Session.objects.count(), DeviceRecord.objects.count(),
            AuditEvent.objects.count()) == counts


def test_a_second_record_of_a_delivered_fraction_is_reconciled_not_counted(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    first = send(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU}]))
    second = send(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU - 1}]))
    assert first is not None and second is not None
    assert second.status == "RECONCILED" and second.session == first.session
    assert second.differences == [{"beam": "Beam 1", "field": "delivered meterset",
                                   "recorded": MU, "device": MU - 1}]
    assert Session.objects.filter(plan=plan).count() == 1
    assert delivered_dose_by_reference(plan=plan) == {1: 1.0}


def test_a_record_for_an_unknown_plan_is_archived_and_assigned_by_a_physicist(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = approved(physicist, patient_id="MACH07")
    record = send(beams_record(plan_uid="1.2.3.4.5.6.7", patient_id="MACH07",
                               beams=[{"beam": 1, "delivered": MU}]))
    assert record is not None and record.status == "UNMATCHED" and record.plan is None
    assert "1.2.3.4.5.6.7" in record.problem
    assert Instance.objects.filter(pk=record.instance_id).exists()
    assert not Session.objects.exists()
    with pytest.raises(PermissionDenied):
        device_record_assign(record=record, plan=plan, user=therapist)
    record = device_record_assign(record=record, plan=plan, user=physicist)
    assert record.status == "ASSIGNED" and record.plan == plan and record.assigned_by == physicist
    assert record.session is not None and record.session.content_origin == "DEVICE"
    assert AuditEvent.objects.filter(action="device_record.assign", user=physicist).exists()


def test_an_unknown_plan_cannot_be_assigned_to_another_patient(physicist) -> None:  # type: ignore[no-untyped-def]
    from rv.errors import ValidationError

    other = approved(physicist, patient_id="OTHER1")
    record = send(beams_record(plan_uid="1.2.3.9", patient_id="MACH08",
                               beams=[{"beam": 1, "delivered": MU}]))
    assert record is not None
    with pytest.raises(ValidationError):
        device_record_assign(record=record, plan=other, user=physicist)


@pytest.mark.parametrize("kwargs", [{"origin": "USER"}, {"origin": "SIMULATION"},
                                    {"origin": None, "manufacturer": "Verity"}])
def test_records_that_are_not_the_machines_stay_archive_objects_only(physicist, kwargs) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    result = object_receive(data=part10(beams_record(
        plan=plan, beams=[{"beam": 1, "delivered": MU}], **kwargs)), calling_ae="OTHER")
    assert result.outcome == "stored"
    assert not DeviceRecord.objects.exists() and not Session.objects.exists()


def test_records_verity_generated_itself_are_ignored(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    object_receive(data=part10(beams_record(plan=plan, beams=[{"beam": 1, "delivered": MU}])),
                   source="generated")
    assert not DeviceRecord.objects.exists() and not Session.objects.exists()


def test_a_record_without_content_origin_is_taken_as_the_machines(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record = send(beams_record(plan=plan, origin=None, beams=[{"beam": 1, "delivered": MU}]))
    assert record is not None and record.status == "CREATED"


def test_a_record_naming_a_beam_the_plan_lacks_is_unmatched_with_the_reason(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record = send(beams_record(plan=plan, beams=[{"beam": 9, "delivered": 10.0}]))
    assert record is not None and record.status == "UNMATCHED"
    assert "Beam 9" in record.problem and not Session.objects.exists()


def test_a_brachy_record_from_the_afterloader_creates_a_device_session(physicist) -> None:  # type: ignore[no-untyped-def]
    from tests.rv.plans import brachy_plan
    from tests.rv.records import brachy_record

    result = object_receive(data=part10(brachy_plan(patient_id="MACHB1")), calling_ae="TPS")
    plan = plan_approve(plan=Plan.objects.get(instance=result.instance), user=physicist,
                        password=PASSWORD)
    record = send(brachy_record(plan=plan, channels=[(1, 120.5, 120.5), (2, 95.25, 95.25)]))
    assert record is not None and record.status == "CREATED" and record.session is not None
    times = sorted(record.session.channels.values_list("channel__number", "delivered_time"))
    assert times == [(1, 120.5), (2, 95.25)]
    assert record.session.verification_status == "VERIFIED"
    assert record.session.fraction_complete
