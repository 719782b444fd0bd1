"""Issue 6: a treatment record Verity builds is found by Query/Retrieve like any stored object:
in the plan's patient and study, in Verity's series (C-FIND), and retrieved whole (C-GET)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User
from pydicom.uid import RTBeamsTreatmentRecordStorage
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from rv.models import Session
from rv.services.plans import plan_approve
from tests.helpers import qr_identifier
from tests.rv.conftest import PASSWORD, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db(transaction=True)


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])  # flushed by transactional tests
    return user


def test_a_session_record_is_found_and_retrieved(live_scp: tuple[str, int]) -> None:
    plan = plan_approve(plan=receive_plan(), user=_user("phoebe", "physicist"),
                        password=PASSWORD)
    beam = plan.beams.get()
    session = session_record(
        plan=plan, machine=beam.machine, recorded_by=_user("theo", "therapist"),
        identity_confirmed=True, now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        beams=[BeamInput(beam=beam, delivered_meterset=beam.fraction_refs.get().meterset)])
    uid = Session.objects.get(pk=session.pk).record_sop_instance_uid
    study_uid = plan.instance.series.study.study_instance_uid

    ae = AE(ae_title="QRSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(RTBeamsTreatmentRecordStorage)
    got = []
    assoc = ae.associate(*live_scp, ae_title="RV_SCP",
                         ext_neg=[build_role(RTBeamsTreatmentRecordStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, lambda e: (got.append(e.dataset), 0)[1])])  # type: ignore[func-returns-value]
    assert assoc.is_established
    try:
        series = [ds for status, ds in assoc.send_c_find(
            qr_identifier("SERIES", StudyInstanceUID=study_uid, Modality="RTRECORD",
                          SeriesDescription="", SeriesInstanceUID=""),
            StudyRootQueryRetrieveInformationModelFind) if status.Status in (0xFF00, 0xFF01)]
        assert sorted(ds.SeriesDescription for ds in series) == [
            "Verity treatment records", "Verity treatment summaries"]
        records = next(ds for ds in series if ds.SeriesDescription == "Verity treatment records")
        found = [ds for status, ds in assoc.send_c_find(
            qr_identifier("IMAGE", StudyInstanceUID=study_uid,
                          SeriesInstanceUID=records.SeriesInstanceUID, SOPInstanceUID="",
                          SOPClassUID=""),
            StudyRootQueryRetrieveInformationModelFind) if status.Status in (0xFF00, 0xFF01)]
        assert [(ds.SOPInstanceUID, ds.SOPClassUID) for ds in found] == [
            (uid, RTBeamsTreatmentRecordStorage)]
        statuses = [status.Status for status, _ in assoc.send_c_get(
            qr_identifier("IMAGE", StudyInstanceUID=study_uid,
                          SeriesInstanceUID=records.SeriesInstanceUID, SOPInstanceUID=uid),
            StudyRootQueryRetrieveInformationModelGet)]
        assert statuses[-1] == 0x0000
    finally:
        assoc.release()
    assert [ds.SOPInstanceUID for ds in got] == [uid]
    assert got[0].TreatmentSessionBeamSequence[0].CurrentFractionNumber == 1
