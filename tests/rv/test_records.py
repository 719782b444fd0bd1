"""Record builders (issue 6): RT Beams / Brachy / Ion Beams Treatment Records and RT Treatment
Summary Records. Each stored object passes dciodvfy, and carries the values a physicist checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import transaction
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    RTBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage,
    RTIonBeamsTreatmentRecordStorage,
    RTTreatmentSummaryRecordStorage,
)

from archive import integrity, storage
from archive.models import Instance
from archive.services import files_removed_on_rollback
from dicom_net.models import ExportJob, Node
from rv.errors import VerificationFailed
from rv.ingest import object_receive
from rv.models import AuditEvent, Plan, Session
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, receive_plan
from tests.rv.dciodvfy import dciodvfy
from tests.rv.plans import brachy_plan, ion_plan, part10, two_group_plan
from tests.rv.treat import BeamInput, ChannelInput, OverrideInput, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def stored(instance: Instance) -> Dataset:
    """The stored object, after dciodvfy found no error in it."""
    path = storage.absolute_path(instance.path)
    dciodvfy(path)
    return dcmread(path)


def record_of(session: Session) -> Dataset:
    session.refresh_from_db()
    assert session.record_sop_instance_uid
    return stored(Instance.objects.get(sop_instance_uid=session.record_sop_instance_uid))


def latest_summary(plan: Plan) -> Dataset:
    instance = Instance.objects.filter(sop_class_uid=RTTreatmentSummaryRecordStorage,
                                       series__study__study_instance_uid=plan.instance.series
                                       .study.study_instance_uid).order_by("-pk").first()
    assert instance is not None
    return stored(instance)


def approved(physicist, plan: Plan | None = None, **kwargs) -> Plan:  # type: ignore[no-untyped-def]
    return plan_approve(plan=plan or receive_plan(**kwargs), user=physicist, password=PASSWORD)


def received(ds: Dataset) -> Plan:
    return Plan.objects.get(instance=object_receive(data=part10(ds), calling_ae="TPS").instance)


def beams(plan: Plan, therapist, mu: dict[int, float] | None = None, *,  # type: ignore[no-untyped-def]
          status: str = "NORMAL", now: datetime = T0, **kwargs) -> Session:
    """Record the plan's beams (all, or those in mu with the MU given)."""
    inputs = []
    for beam in plan.beams.order_by("number"):
        if mu is not None and beam.number not in mu:
            continue
        spec = beam.fraction_refs.get().meterset
        inputs.append(BeamInput(beam=beam, delivered_meterset=spec if mu is None
                                else mu[beam.number], termination_status=status,
                                gantry_angle=kwargs.pop("gantry", None)))
    return session_record(plan=plan, machine=plan.beams.first().machine, beams=inputs,
                          recorded_by=therapist, identity_confirmed=True, now=now, **kwargs)


def test_a_normal_fraction_has_a_valid_record_and_summary(physicist, therapist, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "Europe/Paris"
    plan = approved(physicist)
    session = beams(plan, therapist, gantry=181.0)
    ds = record_of(session)
    assert ds.SOPClassUID == RTBeamsTreatmentRecordStorage and ds.Modality == "RTRECORD"
    # The plan's patient and study, Verity's series; the clinic's local date and time.
    plan_ds = dcmread(storage.absolute_path(plan.instance.path))
    assert (ds.PatientID, ds.PatientName, ds.StudyInstanceUID) == (
        plan_ds.PatientID, plan_ds.PatientName, plan_ds.StudyInstanceUID)
    assert ds.SeriesInstanceUID != plan_ds.SeriesInstanceUID
    assert (ds.Manufacturer, ds.SeriesDescription) == ("Verity", "Verity treatment records")
    assert (ds.TreatmentDate, ds.TreatmentTime) == ("20260302", "090000")
    assert ds.TreatmentRecordContentOrigin == "USER" and ds.OperatorsName == "theo"
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.sop_instance_uid
    assert ds.TreatmentMachineSequence[0].TreatmentMachineName == "TrueBeam1"
    assert (ds.ReferencedFractionGroupNumber, ds.NumberOfFractionsPlanned,
            ds.PrimaryDosimeterUnit) == (1, 30, "MU")
    item = ds.TreatmentSessionBeamSequence[0]
    assert (item.ReferencedBeamNumber, item.CurrentFractionNumber, item.TreatmentDeliveryType,
            item.TreatmentTerminationStatus, item.TreatmentVerificationStatus) == (
        1, 1, "TREATMENT", "NORMAL", "VERIFIED")
    assert (float(item.SpecifiedPrimaryMeterset), float(item.DeliveredPrimaryMeterset)) == (
        251.0, 251.0)
    cps = item.ControlPointDeliverySequence
    assert [c.ReferencedControlPointIndex for c in cps] == [0, 2]
    assert [float(c.DeliveredMeterset) for c in cps] == [0.0, 251.0]
    assert float(cps[0].GantryAngle) == 181.0 and "OverrideSequence" not in cps[0]
    assert cps[0].GantryRotationDirection == "CW"  # as planned
    summary = latest_summary(plan)
    assert summary.SeriesDescription == "Verity treatment summaries"
    assert (summary.CurrentTreatmentStatus, summary.FirstTreatmentDate,
            summary.MostRecentTreatmentDate) == ("ON_TREATMENT", "20260302", "20260302")
    fg = summary.FractionGroupSummarySequence[0]
    assert (fg.FractionGroupType, fg.NumberOfFractionsPlanned,
            fg.NumberOfFractionsDelivered) == ("EXTERNAL_BEAM", 30, 1)
    assert [(f.ReferencedFractionNumber, f.TreatmentTerminationStatus)
            for f in fg.FractionStatusSummarySequence] == [(1, "NORMAL")]
    dose = summary.TreatmentSummaryCalculatedDoseReferenceSequence[0]
    assert (dose.ReferencedDoseReferenceNumber, float(dose.CumulativeDoseToDoseReference)) == (
        1, 1.0)


def test_records_are_in_the_index_and_queued_for_export(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    Node.objects.create(name="OIS", ae_title="OIS", host="127.0.0.1", port=4242,
                        receives_exports=True)
    plan = approved(physicist)
    session = beams(plan, therapist)
    session.refresh_from_db()
    record = Instance.objects.get(sop_instance_uid=session.record_sop_instance_uid)
    assert record.source == "generated"
    assert record.series.study == plan.instance.series.study  # Query/Retrieve finds it there
    summary = Instance.objects.get(sop_class_uid=RTTreatmentSummaryRecordStorage)
    assert {j.instance for j in ExportJob.objects.all()} == {record, summary}
    event = AuditEvent.objects.get(action="session.records")
    assert event.details == {"record": record.sop_instance_uid,
                             "record_sop_class": RTBeamsTreatmentRecordStorage,
                             "summary": summary.sop_instance_uid}
    # A second session: same record series, a new summary instance in the summaries series.
    second = beams(plan, therapist, now=T0 + timedelta(days=1))
    second.refresh_from_db()
    again = Instance.objects.get(sop_instance_uid=second.record_sop_instance_uid)
    assert again.series == record.series and again.instance_number == 2
    assert Instance.objects.filter(sop_class_uid=RTTreatmentSummaryRecordStorage,
                                   series=summary.series).count() == 2
    assert ExportJob.objects.count() == 4
    assert integrity.check().ok and not integrity.check().orphans


def test_a_partial_fraction_and_its_continuation(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    first = beams(plan, therapist, {1: 100.0}, status="OPERATOR")
    second = beams(plan, therapist, {1: 151.0}, now=T0 + timedelta(hours=1))
    a, b = (record_of(s).TreatmentSessionBeamSequence[0] for s in (first, second))
    assert (a.TreatmentDeliveryType, a.TreatmentTerminationStatus, a.CurrentFractionNumber) == (
        "TREATMENT", "OPERATOR", 1)
    assert (b.TreatmentDeliveryType, b.TreatmentTerminationStatus, b.CurrentFractionNumber) == (
        "CONTINUATION", "NORMAL", 1)
    assert [float(x.SpecifiedPrimaryMeterset) for x in (a, b)] == [251.0, 251.0]
    assert [float(x.DeliveredPrimaryMeterset) for x in (a, b)] == [100.0, 151.0]
    # Control points: cumulative in the fraction, the continuation starts where it stopped.
    assert [float(c.DeliveredMeterset) for c in a.ControlPointDeliverySequence] == [0.0, 100.0]
    assert [float(c.DeliveredMeterset) for c in b.ControlPointDeliverySequence] == [100.0, 251.0]
    assert [c.ReferencedControlPointIndex for c in b.ControlPointDeliverySequence] == [0, 2]
    fg = latest_summary(plan).FractionGroupSummarySequence[0]
    assert fg.NumberOfFractionsDelivered == 1
    status = fg.FractionStatusSummarySequence[0]
    assert (status.ReferencedFractionNumber, status.TreatmentTerminationStatus,
            status.TreatmentTime) == (1, "NORMAL", "090000")


def test_the_summary_of_an_open_partial_fraction(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    beams(plan, therapist, {1: 100.0}, status="MACHINE")
    fg = latest_summary(plan).FractionGroupSummarySequence[0]
    assert fg.NumberOfFractionsDelivered == 0
    assert fg.FractionStatusSummarySequence[0].TreatmentTerminationStatus == "MACHINE"
    dose = latest_summary(plan).TreatmentSummaryCalculatedDoseReferenceSequence[0]
    assert float(dose.CumulativeDoseToDoseReference) == pytest.approx(100.0 / 251.0, rel=1e-5)


def test_an_override_names_the_authoriser_and_reason(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    physicist.first_name, physicist.last_name = "Phoebe", "Skłodowska-Curie"
    physicist.save()
    plan = approved(physicist)
    with pytest.raises(VerificationFailed) as exc:
        beams(plan, therapist, gantry=90.0)
    ovr = OverrideInput(username=physicist.username, password=PASSWORD,
                        reason="couch collision",
                        violation_keys=tuple(x.key() for x in exc.value.violations))
    session = beams(plan, therapist, gantry=90.0, override=ovr)
    item = record_of(session).TreatmentSessionBeamSequence[0]
    assert item.TreatmentVerificationStatus == "VERIFIED_OVR"
    (override,) = item.ControlPointDeliverySequence[0].OverrideSequence
    assert override.OperatorsName == "Skłodowska-Curie^Phoebe"  # UTF-8 (ISO_IR 192)
    assert override.OverrideReason == "couch collision"


def test_an_over_delivery_is_recorded_as_delivered_not_verified(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    session = beams(plan, therapist, {1: 260.0})
    item = record_of(session).TreatmentSessionBeamSequence[0]
    assert item.TreatmentVerificationStatus == "NOT_VERIFIED"
    assert float(item.DeliveredPrimaryMeterset) == 260.0
    assert "OverrideSequence" not in item.ControlPointDeliverySequence[0]


def test_a_session_wide_override_is_on_every_beam(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, arcs=2)
    beams(plan, therapist)
    with pytest.raises(VerificationFailed) as exc:  # two hours later: the interval rule
        beams(plan, therapist, now=T0 + timedelta(hours=2))
    ovr = OverrideInput(username=physicist.username, password=PASSWORD, reason="twice daily",
                        violation_keys=tuple(x.key() for x in exc.value.violations))
    session = beams(plan, therapist, now=T0 + timedelta(hours=2), override=ovr)
    ds = record_of(session)
    for item in ds.TreatmentSessionBeamSequence:
        (override,) = item.ControlPointDeliverySequence[0].OverrideSequence
        assert override.OverrideParameterPointer == Tag("TreatmentControlPointDate")
        assert override.OverrideReason == "twice daily"
    assert [i.CurrentFractionNumber for i in ds.TreatmentSessionBeamSequence] == [2, 2]


def test_a_multi_fraction_group_plan(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(two_group_plan()))
    session = beams(plan, therapist, {2: plan.beams.get(  # type: ignore[dict-item]
        number=2).fraction_refs.get().meterset})
    ds = record_of(session)
    assert (ds.ReferencedFractionGroupNumber, ds.NumberOfFractionsPlanned) == (2, 5)
    assert [i.ReferencedBeamNumber for i in ds.TreatmentSessionBeamSequence] == [2]
    groups = latest_summary(plan).FractionGroupSummarySequence
    assert [(g.ReferencedFractionGroupNumber, g.NumberOfFractionsPlanned,
             g.NumberOfFractionsDelivered) for g in groups] == [(1, 25, 0), (2, 5, 1)]
    assert "FractionStatusSummarySequence" not in groups[0]  # no fraction begun


def test_a_brachy_session(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(brachy_plan()))
    setup = plan.application_setups.get()
    ch1, ch2 = setup.channels.order_by("number")
    first = session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                           identity_confirmed=True, now=T0, channels=[
                               ChannelInput(channel=ch1, delivered_time=120.5),
                               ChannelInput(channel=ch2, delivered_time=50.0,
                                            termination_status="OPERATOR")])
    rest = session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                          identity_confirmed=True, now=T0 + timedelta(minutes=20),
                          channels=[ChannelInput(channel=ch2, delivered_time=45.25)])
    ds = record_of(first)
    assert ds.SOPClassUID == RTBrachyTreatmentRecordStorage
    assert (ds.BrachyTreatmentType, ds.BrachyTreatmentTechnique) == ("HDR", "INTRACAVITARY")
    src = ds.RecordedSourceSequence[0]
    assert (src.SourceIsotopeName, float(src.ReferenceAirKermaRate)) == ("Ir-192", 40700.0)
    app = ds.TreatmentSessionApplicationSetupSequence[0]
    assert (app.CurrentFractionNumber, app.TreatmentDeliveryType,
            app.TreatmentTerminationStatus) == (1, "TREATMENT", "OPERATOR")
    assert [(c.ChannelNumber, float(c.SpecifiedChannelTotalTime),
             float(c.DeliveredChannelTotalTime)) for c in app.RecordedChannelSequence] == [
        (1, 120.5, 120.5), (2, 95.25, 50.0)]
    app2 = record_of(rest).TreatmentSessionApplicationSetupSequence[0]
    assert (app2.TreatmentDeliveryType, [float(c.DeliveredChannelTotalTime)
                                         for c in app2.RecordedChannelSequence]) == (
        "CONTINUATION", [45.25])
    summary = latest_summary(plan)
    fg = summary.FractionGroupSummarySequence[0]
    assert (fg.FractionGroupType, fg.NumberOfFractionsPlanned,
            fg.NumberOfFractionsDelivered) == ("BRACHY", 4, 1)


def test_an_ion_session(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(ion_plan()))
    assert plan.kind == "ION"
    session = beams(plan, therapist, {1: 60.0}, status="MACHINE")
    ds = record_of(session)
    assert ds.SOPClassUID == RTIonBeamsTreatmentRecordStorage
    item = ds.TreatmentSessionIonBeamSequence[0]
    assert (item.RadiationType, item.ScanMode, item.TreatmentTerminationStatus,
            float(item.SpecifiedPrimaryMeterset), float(item.DeliveredPrimaryMeterset)) == (
        "PROTON", "MODULATED", "MACHINE", 120.0, 60.0)
    assert [float(c.DeliveredMeterset) for c in item.IonControlPointDeliverySequence] == [
        0.0, 60.0]
    latest_summary(plan)


def test_a_failed_record_rolls_the_session_back_and_leaves_no_file(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = approved(physicist)
    files_before = set(storage.root().rglob("*.dcm"))
    with mock.patch("rv.services.records.record_export", side_effect=[[], RuntimeError("x")]), \
            pytest.raises(RuntimeError):
        beams(plan, therapist)  # the record is stored, then the summary's export fails
    assert not Session.objects.exists()
    assert Instance.objects.count() == 1  # the plan only
    assert set(storage.root().rglob("*.dcm")) == files_before
    assert not integrity.check().orphans


def test_a_rollback_after_the_session_returned_leaves_no_file(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    """The session's commit itself fails (here: its transaction is marked for rollback after
    on_session_recorded returned): the files written are removed."""
    plan = approved(physicist)
    files_before = set(storage.root().rglob("*.dcm"))

    def then_fail(session: Session) -> None:
        from rv.services.records import session_records_store

        session_records_store(session=session)
        raise RuntimeError("commit refused")

    with mock.patch("rv.services.sessions.on_session_recorded", then_fail), \
            pytest.raises(RuntimeError):
        beams(plan, therapist)
    assert not Session.objects.exists()
    assert set(storage.root().rglob("*.dcm")) == files_before


def test_an_enclosing_rollback_leaves_orphans_archive_check_lists(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    """Known limit: a transaction around session_record that rolls back after it returned
    leaves the two files; archive_check lists them as orphans (and --remove-orphans)."""
    plan = approved(physicist)
    with pytest.raises(RuntimeError), transaction.atomic():
        beams(plan, therapist)
        raise RuntimeError("outer rollback")
    assert not Session.objects.exists()
    assert len(integrity.check().orphans) == 2


def test_an_enclosing_transaction_can_guard_its_files_too(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    """A caller that wraps session_record in its own transaction wraps that in
    files_removed_on_rollback: the session's files are handed up to it and removed."""
    plan = approved(physicist)
    with pytest.raises(RuntimeError), files_removed_on_rollback(), transaction.atomic():
        beams(plan, therapist)
        raise RuntimeError("outer rollback")
    assert not Session.objects.exists()
    assert not integrity.check().orphans


def test_a_machine_parameter_override_points_at_the_control_point(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    with pytest.raises(VerificationFailed) as exc:
        beams(plan, therapist, gantry=90.0)
    ovr = OverrideInput(username=physicist.username, password=PASSWORD, reason="couch collision",
                        violation_keys=tuple(x.key() for x in exc.value.violations))
    session = beams(plan, therapist, gantry=90.0, override=ovr)
    first_cp = record_of(session).TreatmentSessionBeamSequence[0].ControlPointDeliverySequence[0]
    assert float(first_cp.GantryAngle) == 90.0  # as delivered, not as planned
    (override,) = first_cp.OverrideSequence
    assert (override.ParameterSequencePointer, override.OverrideParameterPointer,
            override.ParameterItemIndex, override.OperatorsName) == (
        Tag("ControlPointDeliverySequence"), Tag("GantryAngle"), 0, "phoebe")


def test_a_brachy_override(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(brachy_plan()))
    setup = plan.application_setups.get()
    ch1, ch2 = setup.channels.order_by("number")
    channels = [ChannelInput(channel=ch1, delivered_time=ch1.total_time),
                ChannelInput(channel=ch2, delivered_time=ch2.total_time)]
    session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                   identity_confirmed=True, now=T0, channels=channels)
    later = T0 + timedelta(hours=2)  # within the minimum interval
    with pytest.raises(VerificationFailed) as exc:
        session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                       identity_confirmed=True, now=later, channels=channels)
    ovr = OverrideInput(username=physicist.username, password=PASSWORD, reason="twice daily",
                        violation_keys=tuple(x.key() for x in exc.value.violations))
    session = session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                             identity_confirmed=True, now=later, channels=channels,
                             override=ovr)
    app = record_of(session).TreatmentSessionApplicationSetupSequence[0]
    assert app.TreatmentVerificationStatus == "VERIFIED_OVR"
    for item in app.RecordedChannelSequence:
        (override,) = item.BrachyControlPointDeliveredSequence[0].OverrideSequence
        assert override.OverrideReason == "twice daily"


def test_a_brachy_over_time_is_recorded_not_verified(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(brachy_plan()))
    setup = plan.application_setups.get()
    ch1, ch2 = setup.channels.order_by("number")
    over = (ch1.total_time or 0) + 10
    session = session_record(plan=plan, machine=setup.machine, recorded_by=therapist,
                             identity_confirmed=True, now=T0, channels=[
                                 ChannelInput(channel=ch1, delivered_time=over),
                                 ChannelInput(channel=ch2, delivered_time=ch2.total_time)])
    app = record_of(session).TreatmentSessionApplicationSetupSequence[0]
    assert app.TreatmentVerificationStatus == "NOT_VERIFIED"
    assert session.channels.get(channel=ch1).verification_status == "NOT_VERIFIED"
    assert session.channels.get(channel=ch2).verification_status == "VERIFIED"


def test_the_plan_page_links_the_record(client, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    session = beams(plan, therapist)
    session.refresh_from_db()
    client.force_login(physicist)
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert session.record_sop_instance_uid in page
    study = plan.instance.series.study
    assert f'href="/archive/studies/{study.pk}/"' in page
    listing = client.get(f"/archive/studies/{study.pk}/").content.decode()
    assert session.record_sop_instance_uid in listing and "Verity treatment records" in listing


# Approved plans from the shared corpus: two fraction groups, TomoTherapy, two proton plans
# and a PDR plan (Patient's Sex UNKNOWN there). The first fraction, as planned, is recorded.
CORPUS_PLANS = (
    "pymedphys_packages_pymedphys_base_tests_dicom_data_multi_fraction_groups_rtplan.dcm",
    "pps_tomo_plan_error_RP.1.2.826.0.1.3680043.2.200.535245767.18.44281.1806.dcm",
    "pymchelper_RN.1.2.246.352.71.5.361940808526.37240.20200311150225.dcm",
    "dcpt_plan03_ramp_full__ramped_2Gy_ver2_full.dcm",
    "pytg43_examples__oncentra__RP.oncentra.dcm",
)


@pytest.mark.parametrize("name", CORPUS_PLANS)
def test_corpus_plans_make_valid_records(name: str, corpus: Path, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    from tests.rv.test_plan_corpus import _file, _store

    plan = approved(physicist, _store(_file(corpus, name)))
    if plan.kind == Plan.Kind.BRACHY:
        setup = plan.application_setups.first()
        session = session_record(
            plan=plan, machine=setup.machine, recorded_by=therapist, identity_confirmed=True,
            now=T0, channels=[ChannelInput(channel=c, delivered_time=c.total_time)
                              for c in setup.channels.all() if c.total_time])
    else:
        refs = [r for r in plan.fraction_groups.first().beam_refs.select_related("beam")
                if r.meterset and not r.beam.is_setup]
        session = session_record(
            plan=plan, machine=refs[0].beam.machine, recorded_by=therapist, now=T0,
            identity_confirmed=True,
            beams=[BeamInput(beam=r.beam, delivered_meterset=r.meterset) for r in refs])
    record_of(session)
    latest_summary(plan)
