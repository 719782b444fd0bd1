"""The pure rules of UPS Watch and Event (rv.ups_events; PS3.4 CC.2.3, Table CC.2.4-1):
reading a subscription request, and the Event Information of each event type."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rv import ups_events as ev


def _info(**kw: str) -> Dataset:
    ds = Dataset()
    for keyword, value in kw.items():
        setattr(ds, keyword, value)
    return ds


def test_the_well_known_uids_are_the_standards() -> None:
    assert ev.GLOBAL_UID == "1.2.840.10008.5.1.4.34.5"
    assert ev.FILTERED_UID == "1.2.840.10008.5.1.4.34.5.1"
    assert [int(t) for t in ev.EventType] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("info", "action", "uid", "want"), [
    (_info(ReceivingAE="DASH", DeletionLock="TRUE"), 3, "1.2.3", ("DASH", True, None)),
    (_info(ReceivingAE=" DASH ", DeletionLock="false"), 3, "1.2.3", ("DASH", False, None)),
    (_info(ReceivingAE="DASH"), 4, ev.GLOBAL_UID, ("DASH", False, None)),
    (_info(ReceivingAE="DASH"), 5, ev.GLOBAL_UID, ("DASH", False, None)),
    (_info(DeletionLock="TRUE"), 3, "1.2.3", 0x0120),
    (_info(ReceivingAE="DASH"), 3, "1.2.3", 0x0120),
    (_info(ReceivingAE="DASH", DeletionLock="YES"), 3, "1.2.3", 0x0106),
    (_info(), 4, "1.2.3", 0x0120),
])
def test_subscription_request(info: Dataset, action: int, uid: str, want: object) -> None:
    got = ev.subscription_request(action=action, uid=uid, info=info)
    if isinstance(want, int):
        assert isinstance(got, ev.Refusal) and got.status == want and got.comment
    else:
        assert isinstance(got, ev.SubscriptionRequest)
        assert (got.receiving_ae, got.deletion_lock, got.keys) == want


@pytest.mark.filterwarnings("ignore:Invalid value for VR DT")  # the malformed key, on purpose
def test_a_filtered_subscription_keeps_its_matching_keys_and_checks_them() -> None:
    info = _info(ReceivingAE="PPS", DeletionLock="FALSE", ProcedureStepState="SCHEDULED")
    info.ScheduledStationNameCodeSequence = Sequence([_info(CodeValue="TrueBeam1")])
    info.add_new(0x00000100, "US", 0x0130)  # a command element inside: dropped
    got = ev.subscription_request(action=3, uid=ev.FILTERED_UID, info=info)
    assert isinstance(got, ev.SubscriptionRequest) and got.keys is not None
    assert sorted(e.keyword for e in got.keys) == ["ProcedureStepState",
                                                   "ScheduledStationNameCodeSequence"]
    bad = _info(ReceivingAE="PPS", DeletionLock="FALSE",
                ScheduledProcedureStepStartDateTime="20261301")
    refused = ev.subscription_request(action=3, uid=ev.FILTERED_UID, info=bad)
    assert isinstance(refused, ev.Refusal) and refused.status == 0x0106
    # the same keys on the plain global UID are not a filter
    plain = ev.subscription_request(action=3, uid=ev.GLOBAL_UID, info=info)
    assert isinstance(plain, ev.SubscriptionRequest) and plain.keys is None


def _step(state: str, readiness: str = "READY") -> Dataset:
    ds = _info(ProcedureStepState=state, InputReadinessState=readiness,
               PatientName="Secret^Patient")
    ds.ScheduledStationNameCodeSequence = Sequence([_info(CodeValue="TB1",
                                                          CodingSchemeDesignator="99IHERO2008",
                                                          CodeMeaning="TB1")])
    progress = _info(ProcedureStepProgress="40", ProcedureStepProgressDescription="Beam 1",
                     ReasonForCancellation="Interlock",
                     ProcedureStepCancellationDateTime="20260301120000")
    progress.ProcedureStepDiscontinuationReasonCodeSequence = Sequence([
        _info(CodeValue="110513", CodingSchemeDesignator="DCM",
              CodeMeaning="Discontinued for unspecified reason")])
    ds.ProcedureStepProgressInformationSequence = Sequence([progress])
    return ds


def test_state_report_carries_the_states_and_for_canceled_the_reason() -> None:
    report = ev.state_report(_step("IN PROGRESS"))
    assert sorted(e.keyword for e in report) == ["InputReadinessState", "ProcedureStepState"]
    canceled = ev.state_report(_step("CANCELED"))
    assert canceled.ReasonForCancellation == "Interlock"
    assert canceled.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110513"
    through = ev.state_with(_step("CANCELED"), "IN PROGRESS")
    assert through.ProcedureStepState == "IN PROGRESS" and "ReasonForCancellation" not in through


def test_cancel_requested_carries_what_the_request_gave() -> None:
    request = _info(ReasonForCancellation="Patient unwell", ContactURI="tel:1234")
    info = ev.cancel_requested(requesting_ae="OIS", request=request)
    assert (info.RequestingAE, info.ReasonForCancellation, info.ContactURI) == (
        "OIS", "Patient unwell", "tel:1234")
    assert "ContactDisplayName" not in info
    bare = ev.cancel_requested(requesting_ae="OIS", request=_info(ReasonForCancellation=""))
    assert [e.keyword for e in bare] == ["RequestingAE"]


def test_progress_report_and_what_counts_as_progress() -> None:
    step = _step("IN PROGRESS")
    item = ev.progress_report(step).ProcedureStepProgressInformationSequence[0]
    assert (float(item.ProcedureStepProgress), item.ProcedureStepProgressDescription) == (
        40.0, "Beam 1")
    assert "ReasonForCancellation" not in item  # not progress
    later = _step("IN PROGRESS")
    assert not ev.progress_changed(step, later)
    later.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress = "80"
    assert ev.progress_changed(step, later)


def test_assigned_and_scp_status() -> None:
    assigned = ev.assigned(_step("SCHEDULED"))
    assert assigned is not None
    assert [e.keyword for e in assigned] == ["ScheduledStationNameCodeSequence"]
    assert ev.assigned(_info(ProcedureStepState="SCHEDULED")) is None
    assert not any("Patient" in (e.keyword or "") for e in assigned)
    restarted = ev.scp_status(ev.RESTARTED)
    assert (restarted.SCPStatus, restarted.SubscriptionListStatus,
            restarted.UnifiedProcedureStepListStatus) == ("RESTARTED", "WARM START",
                                                          "WARM START")
    assert [e.keyword for e in ev.scp_status(ev.GOING_DOWN)] == ["SCPStatus"]
