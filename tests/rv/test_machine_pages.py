"""The pages of issue 8: differences flagged on the plan and session pages, the unmatched
records page with its assign form (physicists), image review through the web form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rv.ingest import object_receive
from rv.models import DeviceRecord, RTImageLink
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10
from tests.rv.records import beams_record, rt_image
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db


def test_machine_record_differences_show_on_plan_and_session_pages(  # type: ignore[no-untyped-def]
        client, physicist, therapist) -> None:
    plan = plan_approve(plan=receive_plan(patient_id="PAGE01"), user=physicist,
                        password=PASSWORD)
    session = session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                             identity_confirmed=True,
                             now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                             beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=251.0)])
    object_receive(data=part10(beams_record(plan=plan, beams=[
        {"beam": 1, "delivered": 200.0, "termination": "MACHINE"}])), calling_ae="LINAC1")
    object_receive(data=part10(rt_image(plan=plan, fraction=1, label="EPID fx1")),
                   calling_ae="EPID")
    client.force_login(therapist)
    for url in (f"/plans/{plan.pk}/", f"/sessions/{session.pk}/"):
        page = client.get(url).content.decode()
        assert "tr class=\"device-record flagged\"" in page
        assert "delivered meterset: recorded <b>251.0</b>, machine <b>200.0</b>" in page
        assert "termination status: recorded <b>NORMAL</b>, machine <b>MACHINE</b>" in page
        assert "EPID fx1" in page
    chart = client.get(f"/patients/{plan.patient_id}/").content.decode()
    assert "2 to review" in chart  # the reconciled record and the pending portal image
    # A physicist reviews the record: the flag clears, the session stays as recorded.
    record = DeviceRecord.objects.get()
    client.force_login(physicist)
    assert 'name="comment" placeholder="conclusion"' in client.get(
        f"/plans/{plan.pk}/").content.decode()
    client.post(f"/device-records/{record.pk}/review/",
                {"comment": "beam interlock; 51 MU to make up", "next": f"/plans/{plan.pk}/"})
    record.refresh_from_db()
    assert record.reviewed_by == physicist and not record.flagged
    chart = client.get(f"/patients/{plan.patient_id}/").content.decode()
    assert "1 to review" in chart
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "tr class=\"device-record flagged\"" not in page
    assert "beam interlock; 51 MU to make up" in page
    session.refresh_from_db()
    assert session.beams.get().delivered_meterset == 251.0


def test_a_physicist_assigns_an_unmatched_record_from_its_page(client, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(patient_id="PAGE02"), user=physicist,
                        password=PASSWORD)
    object_receive(data=part10(beams_record(plan_uid="1.2.3.77", patient_id="PAGE02", beams=[
        {"beam": 1, "delivered": 251.0}])), calling_ae="LINAC1")
    record = DeviceRecord.objects.get()
    client.force_login(physicist)
    page = client.get("/device-records/").content.decode()
    assert "1.2.3.77" in page and f'<option value="{plan.pk}">' in page
    response = client.post(f"/device-records/{record.pk}/assign/", {"plan": plan.pk})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.status == "ASSIGNED" and record.session is not None


def test_a_therapist_approves_an_image_through_the_form(client, therapist) -> None:  # type: ignore[no-untyped-def]
    result = object_receive(data=part10(rt_image(patient_id="PAGE03")), calling_ae="EPID")
    image = RTImageLink.objects.get(instance=result.instance)
    client.force_login(therapist)
    page = client.get(f"/images/{image.pk}/?wc=100&ww=400").content.decode()
    assert f"/archive/instances/{image.instance_id}/png/?wc=100&amp;ww=400" in page
    client.post(f"/images/{image.pk}/review/", {"decision": "approve", "comment": "fine"})
    image.refresh_from_db()
    assert (image.review_status, image.comment) == ("APPROVED", "fine")


def test_archive_study_page_offers_images_that_belong_to_no_plan(client, therapist) -> None:  # type: ignore[no-untyped-def]
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ct = dcmread(str(get_testdata_file("CT_small.dcm")))
    result = object_receive(data=part10(ct), calling_ae="CT")
    client.force_login(therapist)
    study = result.instance.series.study
    page = client.get(f"/archive/studies/{study.pk}/").content.decode()
    assert f"/archive/instances/{result.instance.pk}/png/" in page
    png = client.get(f"/archive/instances/{result.instance.pk}/png/")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
