"""An RT Plan sent by C-STORE becomes a plan, or is refused with 0xA900 and an Error
Comment naming the problem, with nothing of it stored (issue 4)."""

from __future__ import annotations

from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import RTPlanStorage

from archive.models import Instance
from rv.models import Plan
from tests.rv.plans import part10, vmat_plan


def _send(host: str, port: int, ds):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="TPS")
    ae.add_requested_context(RTPlanStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(host, port, ae_title="RV_SCP")
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


def _plan(**kwargs):  # type: ignore[no-untyped-def]
    ds = vmat_plan(arcs=2, control_points=20, leaf_pairs=60, **kwargs)
    part10(ds)  # sets the file meta (transfer syntax) pynetdicom picks the context by
    return ds


def test_c_store_plan_becomes_clinical_data(live_scp) -> None:  # type: ignore[no-untyped-def]
    status = _send(*live_scp, _plan(label="CSTORE"))  # type: ignore[call-arg]
    assert status.Status == 0x0000
    plan = Plan.objects.get(label="CSTORE")
    assert plan.instance.calling_ae == "TPS"
    assert plan.beams.count() == 2


def test_c_store_refuses_a_plan_with_a_missing_beam(live_scp) -> None:  # type: ignore[no-untyped-def]
    ds = _plan(label="BROKEN")
    ds.FractionGroupSequence[0].ReferencedBeamSequence[1].ReferencedBeamNumber = 9
    status = _send(*live_scp, ds)  # type: ignore[call-arg]
    assert status.Status == 0xA900
    assert status.ErrorComment.startswith("RT Plan rejected: fraction group 1 references beam 9")
    assert not Plan.objects.exists() and not Instance.objects.exists()


def test_c_store_refuses_a_plan_without_fraction_groups(live_scp) -> None:  # type: ignore[no-untyped-def]
    ds = _plan(label="NOFG")
    ds.FractionGroupSequence = Sequence([])
    status = _send(*live_scp, ds)  # type: ignore[call-arg]
    assert status.Status == 0xA900 and "no fraction group" in status.ErrorComment
    assert not Instance.objects.exists()
