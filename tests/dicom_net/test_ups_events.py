"""Issue 14: UPS Watch and UPS Event over real associations. Subscribers are in-test
pynetdicom event receivers registered as nodes (tests/dicom_net/ups_watch.py); they subscribe
over a UPS Watch association, a simulated TDW-II device (tests/dicom_net/tdd.py) claims,
reports progress and ends steps, and the event sender (dicom_net.ups_events) runs in-test
threads: each kind of subscription, each event type with its content, a subscriber that is
down or slow while others are served, and subscriptions that outlive the SCP."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from pydicom.dataset import Dataset
from pynetdicom.sop_class import UnifiedProcedureStepPush

from dicom_net.models import Node
from dicom_net.ups_events import EventWorkers, ups_event_process
from rv.models import AuditEvent, Plan, UpsEvent, UpsSubscription, Workitem
from rv.services.schedule import appointments_schedule
from rv.ups_events import FILTERED_UID, GLOBAL_UID
from tests.conftest import free_port
from tests.dicom_net.tdd import Tdd, cancel_info, final_update, new_transaction_uid, progress
from tests.dicom_net.test_tdw_ii import _outputs, _record, _step, clinic  # noqa: F401
from tests.dicom_net.ups_watch import Got, Receiver, watch_action

pytestmark = pytest.mark.django_db(transaction=True)
STATE, CANCEL_REQ, PROGRESS, SCP_STATUS, ASSIGNED = 1, 2, 3, 4, 5


@pytest.fixture
def sender(settings) -> Iterator[EventWorkers]:  # type: ignore[no-untyped-def]
    """ups_event_worker's threads, in-process: quick retries, three attempts."""
    settings.RV_UPS_EVENT_BASE_DELAY = 0.05
    settings.RV_UPS_EVENT_MAX_DELAY = 0.2
    settings.RV_UPS_EVENT_MAX_ATTEMPTS = 3
    settings.RV_UPS_EVENT_TIMEOUT = 5.0
    workers = EventWorkers(threads=3, poll=0.02).start()
    try:
        yield workers
    finally:
        workers.stop(60)


@pytest.fixture
def watcher(clinic) -> Iterator[Receiver]:  # type: ignore[no-untyped-def]  # noqa: F811
    receiver = Receiver("WATCHER")
    try:
        yield receiver
    finally:
        receiver.stop()


def _eventually(check: Callable[[], bool], what: str,
                show: Callable[[], str] = lambda: "") -> None:
    """Wait (polling the database, 30 s at most) until check() holds."""
    pause = threading.Event()
    for _ in range(600):
        if check():
            return
        pause.wait(0.05)
    raise AssertionError(f"never: {what} {show()}")


def _states(got: list[Got], uid: str) -> list[str]:
    return [g.info.ProcedureStepState for g in got if g.event_type == STATE and g.uid == uid]


def _new_step(clinic: dict[str, object], days: int = 3) -> Workitem:  # noqa: F811
    """Schedule one more fraction: Verity makes a new step for it."""
    plan = clinic["plan"]
    assert isinstance(plan, Plan)
    appointments_schedule(plan=plan, machine=clinic["machine"],  # type: ignore[arg-type]
                          start=timezone.localdate() + timedelta(days=days),
                          user=clinic["therapist"], count=1,  # type: ignore[arg-type]
                          weekdays=tuple(range(7)))
    return Workitem.objects.filter(plan=plan, state="SCHEDULED").order_by("-id").first()  # type: ignore[return-value]


def _treat(tdd: Tdd, plan: Plan, uid: str) -> str:
    """Claim, report progress, store the record, give the final update, complete."""
    txn = new_transaction_uid()
    assert tdd.action(uid, "IN PROGRESS", txn).Status == 0x0000
    assert tdd.nset(uid, progress(txn, percent=40, beam=1))[0].Status == 0x0000
    record = _record(plan)
    assert tdd.store(record) == 0x0000
    now = timezone.localtime()
    assert tdd.nset(uid, final_update(txn, machine="TrueBeam1", start=now, end=now,
                                      outputs=_outputs(record)))[0].Status == 0x0000
    assert tdd.action(uid, "COMPLETED", txn).Status == 0x0000
    return txn


def test_subscribed_to_one_step_a_watcher_hears_claim_progress_and_completion(
        clinic, watcher, sender) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, tdd, scp = clinic["plan"], clinic["tdd"], clinic["scp"]
    step = _step(plan)
    uid = step.sop_instance_uid
    assert watch_action(scp, action=3, uid=uid).Status == 0x0000
    # CC.2.4.3: subscribing to a step is answered with its current state at once
    first = watcher.wait_count(1)[0]
    assert (first.event_type, first.uid, first.sop_class) == (STATE, uid,
                                                              UnifiedProcedureStepPush)
    assert (first.info.ProcedureStepState, first.info.InputReadinessState) == (
        "SCHEDULED", "READY")
    _treat(tdd, plan, uid)
    got = watcher.wait_for(lambda g: "COMPLETED" in _states(g, uid), "COMPLETED")
    assert _states(got, uid) == ["SCHEDULED", "IN PROGRESS", "COMPLETED"]
    reports = [g for g in got if g.event_type == PROGRESS]
    assert len(reports) == 1 and reports[0].uid == uid
    item = reports[0].info.ProcedureStepProgressInformationSequence[0]
    assert float(item.ProcedureStepProgress) == 40.0
    assert item.ProcedureStepProgressDescription == "Beam 1"
    param = item.ProcedureStepProgressParametersSequence[0]
    assert (param.ConceptNameCodeSequence[0].CodeValue, int(param.NumericValue)) == (
        "2018004", 1)
    # only that step: fraction 2's step, and the new one made after completion, are not its
    assert {g.uid for g in got} == {uid}
    _eventually(lambda: not UpsEvent.objects.filter(ae_title="WATCHER")
                .exclude(status="sent").exists(), "every event recorded as sent")
    assert AuditEvent.objects.filter(action="ups.subscribe", username="WATCHER").exists()
    sub = UpsSubscription.objects.get(ae_title="WATCHER")
    assert (sub.kind, sub.workitem_id, sub.deletion_lock) == ("workitem", step.pk, False)


def test_a_global_subscription_with_lock_hears_every_step_and_each_new_one(
        clinic, watcher, sender) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan = clinic["plan"]
    open_steps = list(Workitem.objects.filter(plan=plan, state="SCHEDULED")
                      .values_list("sop_instance_uid", flat=True))
    assert len(open_steps) == 2
    assert watch_action(clinic["scp"], action=3, uid=GLOBAL_UID, lock="TRUE").Status == 0
    got = watcher.wait_count(2)
    assert sorted(g.uid for g in got) == sorted(open_steps)
    assert {(g.event_type, g.info.ProcedureStepState) for g in got} == {(STATE, "SCHEDULED")}
    # a new step: UPS State Report (SCHEDULED) then UPS Assigned (the machine)
    new = _new_step(clinic)
    got = watcher.wait_for(lambda g: any(x.event_type == ASSIGNED for x in g), "UPS Assigned")
    mine = [g for g in got if g.uid == new.sop_instance_uid]
    assert [g.event_type for g in mine] == [STATE, ASSIGNED]
    assert mine[0].info.ProcedureStepState == "SCHEDULED"
    assert mine[0].info.InputReadinessState in ("READY", "INCOMPLETE")
    station = mine[1].info.ScheduledStationNameCodeSequence[0]
    assert (station.CodeValue, station.CodingSchemeDesignator) == ("TrueBeam1", "99IHERO2008")
    rows = UpsSubscription.objects.filter(ae_title="WATCHER")
    assert rows.get(workitem__isnull=True).kind == "global"
    assert rows.filter(workitem__isnull=False, deletion_lock=True).count() == 3


def test_global_without_lock_then_suspended_then_unsubscribed(
        clinic, watcher, sender) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, tdd, scp = clinic["plan"], clinic["tdd"], clinic["scp"]
    assert watch_action(scp, action=3, uid=GLOBAL_UID, lock="FALSE").Status == 0
    first = _new_step(clinic)  # no initial events without a lock: this step's are the first
    got = watcher.wait_count(2)
    assert {g.uid for g in got} == {first.sop_instance_uid}
    # suspended: a newer step is not subscribed, the steps subscribed so far still report
    assert watch_action(scp, action=5, uid=GLOBAL_UID).Status == 0x0000
    later = _new_step(clinic, days=4)
    assert not UpsSubscription.objects.filter(ae_title="WATCHER", workitem=later).exists()
    uid = _step(plan).sop_instance_uid
    assert tdd.action(uid, "IN PROGRESS", new_transaction_uid()).Status == 0x0000
    got = watcher.wait_for(lambda g: "IN PROGRESS" in _states(g, uid), "the claim")
    assert later.sop_instance_uid not in {g.uid for g in got}
    # unsubscribed globally: nothing more, the step subscriptions went with it
    assert watch_action(scp, action=4, uid=GLOBAL_UID).Status == 0x0000
    assert not UpsSubscription.objects.filter(ae_title="WATCHER").exists()
    before = len(watcher.events)
    _new_step(clinic, days=5)
    assert not UpsEvent.objects.filter(ae_title="WATCHER", status="pending").exists()
    assert len(watcher.events) == before


@pytest.mark.filterwarnings("ignore:Invalid value for VR DT")  # the malformed key, on purpose
def test_a_filtered_global_subscription_hears_only_matching_steps(
        clinic, watcher, sender) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, scp = clinic["plan"], clinic["scp"]
    today = timezone.localdate()
    keys = Dataset()
    keys.ScheduledProcedureStepStartDateTime = f"{today:%Y%m%d}0000-{today:%Y%m%d}2359"
    assert watch_action(scp, action=3, uid=FILTERED_UID, lock="TRUE",
                        keys=keys).Status == 0x0000
    todays = _step(plan, 1).sop_instance_uid
    got = watcher.wait_count(1)
    assert [(g.event_type, g.uid) for g in got] == [(STATE, todays)]
    sub = UpsSubscription.objects.get(ae_title="WATCHER", workitem__isnull=True)
    assert sub.kind == "filtered" and "00404005" in sub.filter
    later = _new_step(clinic)  # not today: not subscribed
    assert not UpsSubscription.objects.filter(ae_title="WATCHER", workitem=later).exists()
    assert list(UpsSubscription.objects.filter(ae_title="WATCHER", workitem__isnull=False)
                .values_list("workitem__sop_instance_uid", flat=True)) == [todays]
    # a malformed key is refused when subscribing, not at every event
    bad = Dataset()
    bad.ScheduledProcedureStepStartDateTime = "yesterday"
    status = watch_action(scp, action=3, uid=FILTERED_UID, keys=bad)
    assert status.Status == 0x0106
    assert "ScheduledProcedureStepStartDateTime" in str(status.ErrorComment)


def test_cancel_request_of_a_step_in_progress_goes_to_its_performer(
        clinic, watcher, sender, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, scp = clinic["plan"], clinic["scp"]
    linac = Receiver("LINAC2", performer=True)  # the device's event SCU, a registered node
    try:
        device = Tdd("LINAC2", scp)
        uid = _step(plan).sop_instance_uid
        assert watch_action(scp, action=3, uid=uid).Status == 0
        txn = new_transaction_uid()
        assert device.action(uid, "IN PROGRESS", txn).Status == 0x0000
        # a department system asks, over UPS Watch, for the treatment to be cancelled
        extra = Dataset()
        extra.ReasonForCancellation = "Patient unwell"
        extra.ContactDisplayName = "Dr Who"
        status = watch_action(scp, action=2, uid=uid, calling="OIS", receiving=None,
                              extra=extra)
        assert status.Status == 0x0000
        got = linac.wait_count(1)
        assert (got[0].event_type, got[0].uid) == (CANCEL_REQ, uid)
        assert got[0].info.RequestingAE == "OIS"
        assert got[0].info.ReasonForCancellation == "Patient unwell"
        assert got[0].info.ContactDisplayName == "Dr Who"
        watcher.wait_for(lambda g: any(x.event_type == CANCEL_REQ for x in g), "the request")
        assert Workitem.objects.get(sop_instance_uid=uid).state == "IN PROGRESS"
        assert AuditEvent.objects.filter(action="workitem.cancel_request").exists()
        # the performer decides: it cancels; the watcher hears CANCELED with the reason
        now = timezone.localtime()
        assert device.nset(uid, cancel_info(txn, when=now, reason="Patient unwell"))[0] \
            .Status == 0x0000
        assert device.action(uid, "CANCELED", txn).Status == 0x0000
        got = watcher.wait_for(lambda g: "CANCELED" in _states(g, uid), "CANCELED")
        canceled = [g for g in got if g.event_type == STATE
                    and g.info.ProcedureStepState == "CANCELED"][0]
        assert canceled.info.ReasonForCancellation == "Patient unwell"
        assert canceled.info.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue \
            == "110513"
    finally:
        linac.stop()
    # a performer Verity cannot reach: 0xC312, and nobody is told anything
    ghost = Tdd("GHOST", scp)  # not a node (RV_ACCEPT_UNKNOWN_AE), not a subscriber
    nxt = _step(plan, 1).sop_instance_uid  # fraction 1 again: nothing was delivered
    assert nxt != uid
    assert ghost.action(nxt, "IN PROGRESS", new_transaction_uid()).Status == 0
    pending = UpsEvent.objects.filter(event_type=CANCEL_REQ).count()
    assert watch_action(scp, action=2, uid=nxt, calling="OIS", receiving=None) \
        .Status == 0xC312
    assert UpsEvent.objects.filter(event_type=CANCEL_REQ).count() == pending


def test_cancel_request_of_a_scheduled_step_reports_it_through_in_progress(
        clinic, watcher, sender) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, scp = clinic["plan"], clinic["scp"]
    assert watch_action(scp, action=3, uid=GLOBAL_UID, lock="FALSE").Status == 0
    uid = _step(plan, 2).sop_instance_uid
    assert watch_action(scp, action=2, uid=uid, calling="OIS", receiving=None).Status == 0
    # Table CC.1.1-2: Cancel Requested, then IN PROGRESS, then CANCELED; and the step that
    # replaces it (the appointment stands) is a new step
    got = watcher.wait_for(lambda g: any(x.event_type == ASSIGNED for x in g), "new step")
    mine = [(g.event_type, getattr(g.info, "ProcedureStepState", "")) for g in got
            if g.uid == uid]
    assert mine == [(CANCEL_REQ, ""), (STATE, "IN PROGRESS"), (STATE, "CANCELED")]
    replacement = _step(plan, 2)
    assert replacement.replaces.sop_instance_uid == uid  # type: ignore[union-attr]
    assert [g.event_type for g in got if g.uid == replacement.sop_instance_uid] == [
        STATE, ASSIGNED]


def test_what_a_subscription_request_is_refused_for(clinic, watcher, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    plan, scp = clinic["plan"], clinic["scp"]
    uid = _step(plan).sop_instance_uid
    unknown = watch_action(scp, action=3, uid=uid, receiving="NOBODY")
    assert unknown.Status == 0xC308 and "NOBODY" in str(unknown.ErrorComment)
    Node.objects.create(name="ward", ae_title="WARD", host="10.9.0.0/16", port=104)
    assert watch_action(scp, action=3, uid=uid, receiving="WARD").Status == 0xC308
    assert watch_action(scp, action=3, uid=uid, receiving=None).Status == 0x0120
    assert watch_action(scp, action=3, uid=uid, lock=None).Status == 0x0120
    assert watch_action(scp, action=3, uid=uid, lock="MAYBE").Status == 0x0106
    assert watch_action(scp, action=3, uid="1.2.3.4").Status == 0xC307
    assert watch_action(scp, action=4, uid="1.2.3.4").Status == 0xC307
    assert watch_action(scp, action=5, uid=uid).Status == 0xC314
    assert watch_action(scp, action=6, uid=uid, calling="OIS").Status == 0x0123
    assert not UpsSubscription.objects.exists()
    # a node without the query role may not subscribe (unknown AEs refused here)
    settings.RV_ACCEPT_UNKNOWN_AE = False
    Node.objects.create(name="pacs", ae_title="PACS", host="127.0.0.1", port=104,
                        can_query=False)
    status = watch_action(scp, action=3, uid=uid, calling="PACS", receiving="WATCHER")
    assert status.Status == 0x0124
    # subscribe and unsubscribe one step
    assert watch_action(scp, action=3, uid=uid, calling="WATCHER").Status == 0
    assert watch_action(scp, action=4, uid=uid, calling="WATCHER").Status == 0
    assert not UpsSubscription.objects.exists()


def test_a_subscriber_that_is_down_does_not_hold_up_the_others(
        clinic, watcher, sender, caplog, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    scp = clinic["scp"]
    settings.RV_UPS_EVENT_TIMEOUT = 60.0  # SLOW keeps its sender waiting until let go
    gate = threading.Event()
    slow = Receiver("SLOW", gate=gate)  # answers only when the test lets it
    Node.objects.create(name="down", ae_title="DOWN", host="127.0.0.1", port=free_port())
    try:
        for ae in ("DOWN", "SLOW", "WATCHER"):
            assert watch_action(scp, action=3, uid=GLOBAL_UID, receiving=ae,
                                lock="FALSE").Status == 0
        caplog.set_level(logging.WARNING, logger="dicom_net.ups_events")
        new = _new_step(clinic)
        # SLOW holds a sender thread, DOWN refuses every attempt: WATCHER is served anyway
        got = watcher.wait_count(2)
        assert [(g.event_type, g.uid) for g in got] == [(STATE, new.sop_instance_uid),
                                                        (ASSIGNED, new.sop_instance_uid)]
        assert not slow.events or len(slow.events) < 2
        down = UpsEvent.objects.filter(ae_title="DOWN").order_by("id")
        _eventually(lambda: list(down.all().values_list("status", flat=True)) == ["failed"] * 2,
                    "DOWN's events tried three times, then dropped",
                    lambda: str(list(down.values_list("status", "attempts", "last_error"))))
        assert [(e.status, e.attempts) for e in down] == [("failed", 3), ("failed", 3)]
        assert "no association" in down.first().last_error  # type: ignore[union-attr]
        assert "dropped after 3 attempt(s)" in caplog.text
        assert set(UpsEvent.objects.filter(ae_title="SLOW").values_list("status", flat=True)) \
            <= {"sending", "pending"}
        gate.set()
        got = slow.wait_count(2)
        assert [g.event_type for g in got] == [STATE, ASSIGNED]  # in order
        _eventually(lambda: set(UpsEvent.objects.filter(ae_title="SLOW")
                                .values_list("status", flat=True)) == {"sent"}, "SLOW served")
    finally:
        gate.set()
        slow.stop()


def test_subscriptions_survive_a_restart(clinic, watcher, sender, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A new SCP (a new AE on the same port, as after a restart) knows the subscriptions;
    its start-up SCP Status Change reaches the subscriber."""
    from dicom_net.ae import build_ae, start_server
    from dicom_net.handlers import HANDLERS
    from rv.services.ups_events import scp_status_announce

    plan, tdd = clinic["plan"], clinic["tdd"]
    port = free_port()
    ae = build_ae()
    start_server(ae=ae, host="127.0.0.1", port=port, handlers=HANDLERS)
    uid = _step(plan).sop_instance_uid
    assert watch_action(("127.0.0.1", port), action=3, uid=uid).Status == 0
    watcher.wait_count(1)
    ae.shutdown()
    again = build_ae()
    start_server(ae=again, host="127.0.0.1", port=port, handlers=HANDLERS)
    try:
        assert scp_status_announce(status="RESTARTED") == ["WATCHER"]
        status = watcher.wait_for(lambda g: any(x.event_type == SCP_STATUS for x in g),
                                  "SCP Status Change")[-1]
        assert status.uid == GLOBAL_UID
        assert (status.info.SCPStatus, status.info.SubscriptionListStatus,
                status.info.UnifiedProcedureStepListStatus) == (
            "RESTARTED", "WARM START", "WARM START")
        device = Tdd(tdd.ae_title, ("127.0.0.1", port))
        assert device.action(uid, "IN PROGRESS", new_transaction_uid()).Status == 0x0000
        watcher.wait_for(lambda g: "IN PROGRESS" in _states(g, uid), "the claim")
        assert watch_action(("127.0.0.1", port), action=4, uid=uid).Status == 0
    finally:
        again.shutdown()


def test_runscp_tells_the_subscribers_it_restarted_and_is_going_down(
        live_scp, sender, tmp_path, data_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.dicom_net.runscp_process import start_runscp

    watcher = Receiver("WATCHER")
    try:
        assert watch_action(live_scp, action=3, uid=GLOBAL_UID, lock="FALSE").Status == 0
        proc = start_runscp(free_port(), data_dir, tmp_path / "runscp.log")
        try:
            got = watcher.wait_count(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        got = watcher.wait_count(2)
        assert [(g.event_type, g.uid, g.info.SCPStatus) for g in got] == [
            (SCP_STATUS, GLOBAL_UID, "RESTARTED"), (SCP_STATUS, GLOBAL_UID, "GOING DOWN")]
        assert got[0].info.SubscriptionListStatus == "WARM START"
    finally:
        watcher.stop()


def test_the_worker_command_sends_what_is_due(clinic, watcher, capsys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert watch_action(clinic["scp"], action=3, uid=GLOBAL_UID, lock="TRUE").Status == 0
    assert not watcher.events  # nothing is sent until a worker runs
    call_command("ups_event_worker", "--once")
    assert "2 sent, 0 not sent" in capsys.readouterr().out
    assert len(watcher.wait_count(2)) == 2
    assert ups_event_process(worker="test") is None
