"""The patient banner on every clinical page about a patient (issue 15), the identity
confirmation with it at the console, the day list's patient cells, and the number of
queries they cost (bounded: not one more per alert, note or row)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rv.banner_selectors import patient_banner, patient_cells
from rv.models import Appointment, Patient, Session
from rv.names import age_text
from rv.services.banner import patient_alert_add, patient_photo_upload, setup_note_set
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from tests.rv.conftest import PASSWORD, machine_of
from tests.rv.test_banner import named_patient, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(physicist, therapist) -> Appointment:  # type: ignore[no-untyped-def]
    """SMITH^John^Alan with a photo, two alerts, set-up notes, scheduled today."""
    patient = named_patient("BAN10", "SMITH^John^Alan", birth="19500302")
    plan = plan_approve(plan=patient.plans.get(), user=physicist, password=PASSWORD)
    patient_photo_upload(patient=patient, data=png_bytes(), user=therapist)
    patient_alert_add(patient=patient, kind="DEVICE", text="Pacemaker: check after",
                      user=physicist)
    patient_alert_add(patient=patient, kind="ALLERGY", text="Latex", user=therapist)
    setup_note_set(patient=patient, notes="Arms up", accessories=["Wing board"],
                   user=therapist)
    setup_note_set(patient=patient, course=plan.course, notes="Bolus on the scar",
                   accessories=["Bolus 5 mm"], user=therapist)
    return appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist,
                                 start=timezone.localdate(), weekdays=tuple(range(7)))[0]


def _assert_banner(page: str, patient: Patient, *, course_notes: bool = True) -> None:
    banner = page.split('<section class="patient-banner', 1)[1].split("</section>", 1)[0]
    assert "SMITH, John A." in banner and 'title="SMITH^John^Alan"' in banner
    assert "02 Mar 1950" in banner
    assert f"({age_text(patient.birth_date, timezone.localdate())})" in banner
    assert ">BAN10<" in banner
    photo = patient.photos.get()
    assert f'src="/patients/{patient.pk}/photos/{photo.pk}/"' in banner
    assert "Pacemaker / implanted device</strong>: Pacemaker: check after" in banner
    assert "Allergy</strong>: Latex" in banner
    assert "Arms up" in banner and "Wing board" in banner
    assert ("Bolus on the scar" in banner) is course_notes
    assert ("Bolus 5 mm" in banner) is course_notes


def test_the_banner_on_every_clinical_page(client: Client, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    plan = scheduled.plan
    patient = plan.patient
    m = scheduled.machine.name
    check = f"/console/{m}/appointments/{scheduled.pk}/check/"
    record = f"/console/{m}/appointments/{scheduled.pk}/record/"
    pages = {f"/patients/{patient.pk}/": False, f"/courses/{plan.course_id}/": True,
             f"/plans/{plan.pk}/": True, check: True, record: True,
             f"/patients/{patient.pk}/banner/": False}
    for url, course_notes in pages.items():
        got = client.get(url)
        assert got.status_code == 200, url
        _assert_banner(got.content.decode(), patient, course_notes=course_notes)
    beam = plan.beams.get()
    assert client.post(check, {"identity_confirmed": "on"}).status_code == 302
    after_check = client.get(record).content.decode()
    _assert_banner(after_check, patient)
    assert "Identity confirmed at the set-up check by theo" in after_check
    assert client.post(record, {f"mu_{beam.pk}": "251", f"term_{beam.pk}": "NORMAL",
                                "identity_confirmed": "on"}).status_code == 302
    session = Session.objects.get()
    _assert_banner(client.get(f"/sessions/{session.pk}/").content.decode(), patient)


def test_identity_is_confirmed_in_the_banner(client: Client, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    url = f"/console/{scheduled.machine.name}/appointments/{scheduled.pk}/check/"
    page = client.get(url).content.decode()
    banner = page.split('<section class="patient-banner', 1)[1].split("</section>", 1)[0]
    assert "Confirm the patient's identity before treatment" in banner
    assert "Compare the face with the photo" in banner
    assert 'name="identity_confirmed" form="setup-form"' in banner  # the page's form
    assert 'id="setup-form"' in page
    assert "I have confirmed the patient's identity: name, date of birth, ID and photo" \
        in banner
    refused = client.post(url, {}).content.decode()
    assert "Confirm the patient" in refused  # the service's message: nothing checked


def test_no_photo_is_said(client: Client, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    patient = named_patient("BAN11", "=山田^太郎=やまだ^たろう")
    plan = plan_approve(plan=patient.plans.get(), user=physicist, password=PASSWORD)
    a = appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist,
                              start=timezone.localdate(), weekdays=tuple(range(7)))[0]
    client.force_login(therapist)
    page = client.get(f"/console/{a.machine.name}/appointments/{a.pk}/check/").content.decode()
    assert "山田 太郎 (やまだ たろう)" in page and "No photo on file" in page
    assert "Add a photo" in page and "No alerts" in page
    assert "identity: name, date of birth, ID</label>" in page.replace("\n", "")


def test_the_day_list_cells(client: Client, therapist, scheduled, physicist) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    patient = scheduled.plan.patient
    day = client.get(f"/console/{scheduled.machine.name}/").content.decode()
    photo = patient.photos.get()
    assert f'src="/patients/{patient.pk}/photos/{photo.pk}/thumbnail/"' in day
    assert "SMITH, John A." in day and "02 Mar 1950" in day and ">BAN10<" in day
    assert 'class="alert alert-device" title="Pacemaker / implanted device: Pacemaker: ' \
        'check after"' in day
    assert ">Allergy</span>" in day and ">Device</span>" in day


def test_banner_queries_are_bounded(scheduled, physicist) -> None:  # type: ignore[no-untyped-def]
    patient = scheduled.plan.patient
    course = scheduled.plan.course
    with CaptureQueriesContext(connection) as few:
        banner = patient_banner(patient=patient, course=course)
    for i in range(6):
        patient_alert_add(patient=patient, kind="OTHER", text=f"note {i}", user=physicist)
    with CaptureQueriesContext(connection) as many:
        more = patient_banner(patient=patient, course=course)
    assert len(few) == len(many) == 3
    assert len(more.alerts) == len(banner.alerts) + 6
    people = [named_patient(f"BAN2{i}", f"JONES^Ann{i}") for i in range(4)] + [patient]
    with CaptureQueriesContext(connection) as cells:
        got = patient_cells(patients=people)
    assert len(cells) == 2 and len(got) == 5 and got[patient.pk].photo_id is not None
    assert len(got[patient.pk].alerts) == 8 and got[people[0].pk].alerts == []


def test_pages_do_not_grow_with_alerts(client: Client, therapist, scheduled, physicist) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    plan = scheduled.plan
    urls = [f"/patients/{plan.patient_id}/", f"/plans/{plan.pk}/",
            f"/console/{scheduled.machine.name}/appointments/{scheduled.pk}/check/",
            f"/console/{scheduled.machine.name}/"]

    def counts() -> list[int]:
        out = []
        for url in urls:
            with CaptureQueriesContext(connection) as q:
                assert client.get(url).status_code == 200
            out.append(len(q))
        return out

    before = counts()
    for i in range(5):
        patient_alert_add(patient=plan.patient, kind="INFECTION", text=f"MRSA {i}",
                          user=physicist)
    assert counts() == before


def test_the_banner_on_an_image_page(client: Client, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    from rv.ingest import object_receive
    from rv.models import RTImageLink
    from tests.rv.plans import part10
    from tests.rv.records import rt_image

    plan = scheduled.plan
    image = RTImageLink.objects.get(instance=object_receive(
        data=part10(rt_image(plan=plan, beam=1, fraction=1)), calling_ae="EPID").instance)
    client.force_login(therapist)
    page = client.get(f"/images/{image.pk}/")
    assert page.status_code == 200
    _assert_banner(page.content.decode(), plan.patient, course_notes=False)
