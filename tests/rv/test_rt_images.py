"""RT Images in (issue 8): linked to patient, plan, beam and fraction; rendered to PNG (the
PNG decodes and has the image's size); reviewed by a therapist or physician, audited."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless

from rv.errors import PermissionDenied, ValidationError
from rv.imaging import png_encode, render, window
from rv.ingest import object_receive
from rv.models import AuditEvent, Plan, RTImageLink
from rv.roles import THERAPIST
from rv.services.images import rt_image_review
from tests.rv.conftest import make_user, receive_plan
from tests.rv.plans import part10
from tests.rv.records import png_decode, rt_image

pytestmark = pytest.mark.django_db


def receive_image(ds) -> RTImageLink:  # type: ignore[no-untyped-def]
    result = object_receive(data=part10(ds), calling_ae="EPID")
    return RTImageLink.objects.get(instance=result.instance)


def test_png_encode_round_trips_grey_and_rgb() -> None:
    grey = (np.arange(35 * 17) % 256).astype(np.uint8).reshape(17, 35)
    assert np.array_equal(png_decode(png_encode(grey)), grey)
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=2)
    assert np.array_equal(png_decode(png_encode(rgb)), rgb)


def test_window_is_dicoms_linear_function() -> None:
    values = np.array([0.0, 1023.5, 2047.5, 4095.0])
    assert window(values, center=2048, width=4096).tolist() == [0, 64, 128, 255]
    assert window(values, center=100, width=1).tolist() == [0, 255, 255, 255]


def test_a_portal_image_is_linked_to_plan_beam_and_fraction_and_rendered(client) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(patient_id="IMG01")
    link = receive_image(rt_image(plan=plan, beam=1, fraction=3, label="Portal Arc1"))
    assert (link.plan, link.beam, link.fraction_number, link.label, link.kind) == (
        plan, plan.beams.get(number=1), 3, "Portal Arc1", "PORTAL")
    assert link.patient == plan.patient and link.review_status == "PENDING"
    client.force_login(make_user("viewer", THERAPIST))
    response = client.get(f"/archive/instances/{link.instance_id}/png/")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    pixels = png_decode(response.content)
    assert pixels.shape == (48, 64)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255  # the gradient, windowed 0..4095
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "Portal Arc1" in page and f"/images/{link.pk}/" in page


def test_the_users_window_and_monochrome1_change_the_pixels_and_are_cached(  # type: ignore[no-untyped-def]
        client, data_dir) -> None:
    link = receive_image(rt_image(patient_id="IMG02", photometric="MONOCHROME1", window=None))
    client.force_login(make_user("viewer", THERAPIST))
    auto = png_decode(client.get(f"/archive/instances/{link.instance_id}/png/").content)
    assert auto[0, 0] == 255 and auto[-1, -1] == 0  # MONOCHROME1: low values bright
    narrow = png_decode(client.get(
        f"/archive/instances/{link.instance_id}/png/?wc=100&ww=50").content)
    assert narrow[-1, -1] == 0 and (narrow == 0).mean() > 0.9
    cached = sorted(p.name for p in (data_dir / "cache" / "png").iterdir())
    sha = link.instance.sha256
    assert cached == [f"{sha}-100-50.png", f"{sha}-auto-auto.png"]


def test_a_kv_image_and_a_drr_are_told_apart() -> None:
    plan = receive_plan(patient_id="IMG03")
    assert receive_image(rt_image(plan=plan, image_type="SIMULATOR")).kind == "KV"
    assert receive_image(rt_image(plan=plan, image_type="DRR", fraction=None)).kind == "DRR"


def test_an_image_received_before_its_plan_is_linked_when_the_plan_arrives() -> None:
    from tests.rv.plans import vmat_plan

    plan_ds = vmat_plan(patient_id="IMG04", arcs=1, control_points=3, leaf_pairs=2)
    link = receive_image(rt_image(plan_uid=plan_ds.SOPInstanceUID, patient_id="IMG04"))
    assert link.plan is None and link.referenced_plan_uid == plan_ds.SOPInstanceUID
    object_receive(data=part10(plan_ds), calling_ae="TPS")
    link.refresh_from_db()
    assert link.plan is not None and link.plan.sop_instance_uid == plan_ds.SOPInstanceUID
    assert link.beam is not None and link.beam.number == 1


def test_a_compressed_image_without_a_decoder_says_it_cannot_render(client) -> None:  # type: ignore[no-untyped-def]
    ds = rt_image(patient_id="IMG05")
    data = bytearray(part10(ds))
    parsed = dcmread(__import__("io").BytesIO(bytes(data)))
    parsed.file_meta.TransferSyntaxUID = JPEG2000Lossless
    from pydicom.encaps import encapsulate

    parsed.PixelData = encapsulate([b"\xff\x4f\xff\x51not-a-real-codestream"])
    parsed["PixelData"].VR = "OB"
    import io

    buf = io.BytesIO()
    parsed.save_as(buf, enforce_file_format=True)
    link = receive_image(dcmread(io.BytesIO(buf.getvalue())))
    client.force_login(make_user("viewer", THERAPIST))
    response = client.get(f"/archive/instances/{link.instance_id}/png/")
    assert response.status_code == 415 and b"Cannot render" in response.content
    page = client.get(f"/images/{link.pk}/")
    assert page.status_code == 200 and b"Cannot render" in page.content


def test_a_therapist_or_physician_reviews_an_image_and_it_is_audited(  # type: ignore[no-untyped-def]
        therapist, physician, physicist) -> None:
    link = receive_image(rt_image(patient_id="IMG06"))
    with pytest.raises(PermissionDenied):
        rt_image_review(image=link, user=physicist, approve=True)
    with pytest.raises(ValidationError):
        rt_image_review(image=link, user=physician, approve=False, comment=" ")
    link = rt_image_review(image=link, user=therapist, approve=True, comment="isocentre ok")
    assert (link.review_status, link.reviewed_by, link.comment) == (
        "APPROVED", therapist, "isocentre ok")
    link = rt_image_review(image=link, user=physician, approve=False, comment="2 mm shift")
    assert link.review_status == "REJECTED"
    actions = list(AuditEvent.objects.filter(object_type="rv.rtimagelink")
                   .order_by("id").values_list("action", "username"))
    assert actions == [("rt_image.link", "EPID"), ("rt_image.approve", "theo"),
                       ("rt_image.reject", "dr_drew")]


def test_the_corpus_drr_is_linked_to_its_plan_imported_first_and_rendered(corpus) -> None:  # type: ignore[no-untyped-def]
    drr_path = next((corpus / "files" / "rtimage").glob("*.dcm"))
    drr = dcmread(drr_path)
    plan_uid = drr.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    plan_path = next(p for p in (corpus / "files" / "rtplan").rglob("*.dcm")
                     if getattr(dcmread(p, stop_before_pixels=True, force=True,
                                        specific_tags=["SOPInstanceUID"]),
                                "SOPInstanceUID", None) == plan_uid)
    # Verity refuses this plan as sent (test_plan_corpus: its CBCT beam 5 is typed TREATMENT
    # with no Beam Meterset); typed SETUP, as it is, it imports under its own SOP Instance UID.
    plan_ds = dcmread(plan_path, force=True)
    for beam in plan_ds.BeamSequence:
        if beam.BeamName == "CBCT":
            beam.TreatmentDeliveryType = "SETUP"
    object_receive(data=part10(plan_ds), calling_ae="TPS")
    plan = Plan.objects.get(sop_instance_uid=plan_uid)
    link = RTImageLink.objects.get(instance=object_receive(
        data=drr_path.read_bytes(), calling_ae="TPS").instance)
    assert (link.plan, link.kind, link.label) == (plan, "DRR", str(drr.RTImageLabel))
    assert link.beam is not None and link.beam.number == int(drr.ReferencedBeamNumber)
    pixels = png_decode(render(drr))
    assert pixels.shape == (int(drr.Rows), int(drr.Columns))
