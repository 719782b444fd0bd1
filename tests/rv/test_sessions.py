"""session_record: verification, partial fractions, overrides, dose tracking, completion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rv.errors import Conflict, HardStop, PermissionDenied, ValidationError, VerificationFailed
from rv.ingest import object_receive
from rv.models import (
    Appointment,
    AuditEvent,
    Course,
    Override,
    Plan,
    Session,
    ToleranceTable,
    TreatmentMachine,
)
from rv.selectors import delivered_dose_by_reference, plan_fractions_delivered
from rv.services.esign import REFUSED
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule, schedule_dates
from rv.verification import (
    CUMULATIVE_DOSE,
    FRACTION_INTERVAL,
    MACHINE_PARAMETER,
    METERSET,
    WRONG_MACHINE,
)
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan
from tests.rv.plans import brachy_plan, part10
from tests.rv.treat import BeamInput, ChannelInput, OverrideInput, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday


def approved(physicist, **kwargs) -> Plan:  # type: ignore[no-untyped-def]
    plan = receive_plan(**kwargs)
    return plan_approve(plan=plan, user=physicist, password=PASSWORD)


def record(plan: Plan, therapist, *, mu: float | None = None, status: str = "NORMAL",  # type: ignore[no-untyped-def]
           now: datetime = T0, machine: TreatmentMachine | None = None, **kwargs) -> Session:
    beam = plan.beams.get(number=1)
    spec = beam.fraction_refs.get().meterset or 0.0
    return session_record(
        plan=plan, machine=machine or machine_of(plan), recorded_by=therapist,
        identity_confirmed=True, now=now,
        beams=[BeamInput(beam=beam, delivered_meterset=spec if mu is None else mu,
                         termination_status=status,
                         gantry_angle=kwargs.pop("gantry", None))], **kwargs)


def keys(exc: VerificationFailed) -> tuple[str, ...]:
    return tuple(x.key() for x in exc.violations)


def test_a_verified_fraction_is_recorded_with_dose_and_audit(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    session = record(plan, therapist, gantry=181.5)
    assert (session.fraction_number, session.continuation, session.fraction_complete) == (
        1, False, True)
    assert session.verification_status == "VERIFIED"
    delivery = session.beams.get()
    assert delivery.verification_status == "VERIFIED" and delivery.delivered_dose == 1.0
    assert delivered_dose_by_reference(plan=plan) == {1: 1.0}
    plan.refresh_from_db()
    assert plan.treatment_started and plan_fractions_delivered(plan=plan) == 1
    assert ToleranceTable.objects.get(plan=plan).used_for_delivery
    assert Course.objects.get(pk=plan.course_id).treatment_status == "ON_TREATMENT"
    event = AuditEvent.objects.get(action="session.record")
    assert event.user == therapist and event.details["fraction_number"] == 1


def test_a_beam_stopped_early_is_continued_and_the_metersets_add_up(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    first = record(plan, therapist, mu=100.0, status="OPERATOR")
    assert not first.fraction_complete and plan_fractions_delivered(plan=plan) == 0
    # An hour later (a continuation is exempt from the interval): the rest of fraction 1.
    second = record(plan, therapist, mu=151.0, now=T0 + timedelta(hours=1))
    assert (second.fraction_number, second.continuation, second.fraction_complete) == (
        1, True, True)
    beams = [s.beams.get() for s in (first, second)]
    assert [b.remaining_before for b in beams] == [251.0, 151.0]
    assert sum(b.delivered_meterset for b in beams) == beams[0].specified_meterset  # C.8.8.21.2
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(1.0)}
    assert plan_fractions_delivered(plan=plan) == 1


def test_a_continuation_over_what_is_left_is_stored_and_flagged(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record(plan, therapist, mu=200.0, status="MACHINE")
    session = record(plan, therapist, mu=60.0, now=T0 + timedelta(minutes=30))
    assert session.verification_status == "NOT_VERIFIED" and session.continuation
    finding = session.findings[0]
    assert finding["rule"] == METERSET and finding["planned"] == 51.0
    assert session.beams.get().remaining_after == 0  # never negative


def test_an_out_of_tolerance_meterset_is_stored_and_flagged(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    session = record(plan, therapist, mu=260.0)
    assert [x["rule"] for x in session.findings] == [METERSET]
    assert session.verification_status == "NOT_VERIFIED"
    assert session.beams.get().delivered_meterset == 260.0
    assert session.beams.get().verification_status == "NOT_VERIFIED"
    plan.refresh_from_db()
    assert plan.treatment_started


def test_a_physicist_overrides_a_set_up_violation(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, gantry=90.0)
    assert not Session.objects.exists()
    assert AuditEvent.objects.filter(action="setup.blocked").count() == 1
    ovr = OverrideInput(username=physicist.username, password=PASSWORD,
                        reason="couch collision: gantry start moved",
                        violation_keys=keys(exc.value))
    session = record(plan, therapist, gantry=90.0, override=ovr)
    assert session.verification_status == "VERIFIED_OVR"
    assert session.beams.get().verification_status == "VERIFIED_OVR"
    row = Override.objects.get()
    assert (row.authorised_by, row.rule, row.actual) == (physicist, MACHINE_PARAMETER, "90.0")
    assert row.beam_delivery == session.beams.get() and row.session == session
    assert row.clearance == session.clearance
    assert AuditEvent.objects.get(action="override.grant").user == physicist


def test_the_recording_therapist_cannot_authorise_even_as_physicist(physicist) -> None:  # type: ignore[no-untyped-def]
    both = make_user("tess", "therapist")
    both.groups.add(*physicist.groups.all())
    plan = approved(physicist)
    with pytest.raises(VerificationFailed) as exc:
        record(plan, both, gantry=90.0)
    ovr = OverrideInput(username="tess", password=PASSWORD, reason="x",
                        violation_keys=keys(exc.value))
    with pytest.raises(PermissionDenied) as refused:
        record(plan, both, gantry=90.0, override=ovr)
    assert refused.value.message == REFUSED  # the one e-signature refusal (rv.services.esign)
    assert AuditEvent.objects.get(action="esign.refused").details["cause"] == \
        "signer is the user whose work is signed"


def test_wrong_password_or_therapist_authoriser_is_refused_alike(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    make_user("tom", "therapist")
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, gantry=90.0)
    messages = set()
    for name, password in ((physicist.username, "wrong"), ("tom", PASSWORD),
                           ("nobody", PASSWORD)):
        ovr = OverrideInput(username=name, password=password, reason="r",
                            violation_keys=keys(exc.value))
        with pytest.raises(PermissionDenied) as refused:
            record(plan, therapist, gantry=90.0, override=ovr)
        messages.add(refused.value.message)
    assert messages == {REFUSED}  # no oracle on whether another user's password was right
    assert not Session.objects.exists()
    assert AuditEvent.objects.filter(action="override.refused").count() == 3


def test_an_override_covers_only_the_violations_it_was_shown(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, gantry=90.0)
    ovr = OverrideInput(username=physicist.username, password=PASSWORD, reason="r",
                        violation_keys=keys(exc.value))
    with pytest.raises(VerificationFailed):  # another angle than the one authorised
        record(plan, therapist, gantry=100.0, override=ovr)


def test_interval_and_conflicting_fraction_number(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record(plan, therapist)
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, now=T0 + timedelta(hours=2))
    assert [x.rule for x in exc.value.violations] == [FRACTION_INTERVAL]
    with pytest.raises(Conflict, match="already been recorded"):
        record(plan, therapist, now=T0 + timedelta(days=1), fraction_number=1)
    assert record(plan, therapist, now=T0 + timedelta(days=1), fraction_number=2).pk


def test_wrong_machine_identity_and_role(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    other = TreatmentMachine.objects.create(name="Halcyon2")
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, machine=other)
    assert [x.rule for x in exc.value.violations] == [WRONG_MACHINE]
    beam = plan.beams.get()
    with pytest.raises(ValidationError, match="identity"):
        session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                       identity_confirmed=False, beams=[BeamInput(beam=beam,
                                                                  delivered_meterset=251.0)])
    with pytest.raises(PermissionDenied, match="therapist"):
        record(plan, physicist)


def test_cumulative_dose_limit(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    plan.dose_references.update(delivery_maximum_dose=1.5)
    record(plan, therapist)
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, now=T0 + timedelta(days=1))
    assert [x.rule for x in exc.value.violations] == [CUMULATIVE_DOSE]


def test_the_last_fraction_completes_plan_and_course(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, fractions=2)
    record(plan, therapist)
    record(plan, therapist, now=T0 + timedelta(days=1))
    plan.refresh_from_db()
    assert plan.status == "COMPLETED"
    assert Course.objects.get(pk=plan.course_id).treatment_status == "COMPLETED"
    with pytest.raises(VerificationFailed) as exc:
        record(plan, therapist, now=T0 + timedelta(days=2))
    assert {x.rule for x in exc.value.violations} >= {"plan_not_approved", "fraction_count"}


def test_fractions_of_an_earlier_revision_count(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    first = approved(physicist, fractions=3)
    record(first, therapist)
    second = approved(physicist, fractions=3)
    assert second.previous_revision_id == first.pk
    session = record(second, therapist, now=T0 + timedelta(days=1))
    assert session.fraction_number == 2
    assert plan_fractions_delivered(plan=second) == 2
    assert delivered_dose_by_reference(plan=second) == {1: 2.0}


def test_brachy_channels_with_interruptions(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    result = object_receive(data=part10(brachy_plan()), calling_ae="TPS")
    plan = plan_approve(plan=Plan.objects.get(instance=result.instance), user=physicist,
                        password=PASSWORD)
    setup = plan.application_setups.get()
    ch1, ch2 = setup.channels.order_by("number")
    session = session_record(
        plan=plan, machine=machine_of(plan), recorded_by=therapist, identity_confirmed=True,
        now=T0, channels=[
            ChannelInput(channel=ch1, delivered_time=120.5, interruptions=(
                {"after_seconds": 60.0, "duration_seconds": 30.0, "reason": "door"},)),
            ChannelInput(channel=ch2, delivered_time=50.0, termination_status="OPERATOR")])
    assert not session.fraction_complete
    assert session.channels.get(channel=ch1).interruptions[0]["reason"] == "door"
    rest = session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                          identity_confirmed=True, now=T0 + timedelta(minutes=20),
                          channels=[ChannelInput(channel=ch2, delivered_time=45.25)])
    assert rest.continuation and rest.fraction_complete
    doses = [c.delivered_dose for s in (session, rest) for c in s.channels.all()]
    assert sum(doses) == pytest.approx(7.0)  # the setup's dose, split by channel time


def test_schedule_weekdays_and_count(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, fractions=5)
    machine = machine_of(plan)
    assert [d.weekday() for d in schedule_dates(start=date(2026, 3, 6), count=3)] == [4, 0, 1]
    made = appointments_schedule(plan=plan, machine=machine, start=date(2026, 3, 6),
                                 user=therapist)
    assert [a.fraction_number for a in made] == [1, 2, 3, 4, 5]
    assert made[1].date == date(2026, 3, 9)
    with pytest.raises(ValidationError, match="already"):
        appointments_schedule(plan=plan, machine=machine, start=date(2026, 4, 1), user=therapist)
    session = record(plan, therapist, now=T0)
    assert session.appointment == made[0]
    assert Appointment.objects.get(pk=made[0].pk).status == "DONE"
    assert AuditEvent.objects.filter(action="schedule.create").count() == 1


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(min_value=0.05, max_value=0.95), min_size=0, max_size=3))
def test_stored_partial_sessions_add_up_to_the_specified_meterset(  # type: ignore[no-untyped-def]
        physicist, therapist, cuts: list[float]) -> None:
    """PS3.3 C.8.8.21.2 through the service and the database: whatever the early stops,
    the continuations' delivered metersets sum to the specified one, and only the last
    session completes the fraction."""
    plan = approved(physicist, patient_id=f"P{Plan.objects.count()}")
    spec = 251.0
    when = T0
    sessions: list[Session] = []
    for cut in cuts:
        left = spec - sum(s.beams.get().delivered_meterset for s in sessions)
        sessions.append(record(plan, therapist, mu=round(left * cut, 3), status="OPERATOR",
                               now=when))
        when += timedelta(minutes=10)
    left = spec - sum(s.beams.get().delivered_meterset for s in sessions)
    sessions.append(record(plan, therapist, mu=left, now=when))
    deliveries = [s.beams.get() for s in sessions]
    assert sum(d.delivered_meterset for d in deliveries) == pytest.approx(spec)
    assert [s.fraction_complete for s in sessions] == [False] * len(cuts) + [True]
    assert {s.fraction_number for s in sessions} == {1}
    assert [s.continuation for s in sessions] == [False] + [True] * len(cuts)
    assert all(d.specified_meterset == spec for d in deliveries)


def test_the_interval_is_a_setting(settings, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    settings.RV_MIN_FRACTION_INTERVAL_HOURS = 1
    plan = approved(physicist)
    record(plan, therapist)
    assert record(plan, therapist, now=T0 + timedelta(hours=1)).fraction_number == 2


def test_a_suspended_course_is_not_treated_until_resumed(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    from rv.services.course_status import course_treatment_status_set

    plan = approved(physicist)
    course_treatment_status_set(course=plan.course, user=physicist, status="SUSPENDED",
                                reason="blood count")
    with pytest.raises(HardStop, match="SUSPENDED"):
        record(plan, therapist)
    course_treatment_status_set(course=plan.course, user=physicist, status="ON_TREATMENT")
    assert record(plan, therapist).fraction_number == 1
    assert [e.details["to"] for e in AuditEvent.objects.filter(
        action="course.treatment_status").order_by("id")] == ["SUSPENDED", "ON_TREATMENT"]
