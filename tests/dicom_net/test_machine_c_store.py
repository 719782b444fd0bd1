"""Issue 8 over the wire: a linac's treatment record and an EPID's RT Image sent by C-STORE
are taken in by the same door; a record with a violation is still answered 0x0000 (the
machine has delivered) and its session stored NOT_VERIFIED."""

from __future__ import annotations

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import RTBeamsTreatmentRecordStorage, RTImageStorage

from rv.models import DeviceRecord, RTImageLink
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, make_user, receive_plan
from tests.rv.plans import part10
from tests.rv.records import beams_record, rt_image


def _send(host: str, port: int, *datasets):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="LINAC1")
    for sop_class in (RTBeamsTreatmentRecordStorage, RTImageStorage):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate(host, port, ae_title="RV_SCP")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def test_a_linac_record_and_a_portal_image_by_c_store(live_scp) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name="physicist")
    plan = plan_approve(plan=receive_plan(patient_id="WIRE01"),
                        user=make_user("phys", "physicist"), password=PASSWORD)
    record = beams_record(plan=plan, beams=[{"beam": 1, "delivered": 300.0}])
    image = rt_image(plan=plan, fraction=1)
    part10(record)
    part10(image)
    assert _send(*live_scp, record, image) == [0x0000, 0x0000]
    stored = DeviceRecord.objects.get()
    assert stored.status == "CREATED" and stored.instance.calling_ae == "LINAC1"
    assert stored.session is not None and stored.session.verification_status == "NOT_VERIFIED"
    assert [v["rule"] for v in stored.violations] == ["meterset"]
    link = RTImageLink.objects.get()
    assert (link.plan, link.fraction_number) == (plan, 1)
