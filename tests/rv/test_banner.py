"""The patient in view (issue 15): photo upload (checked, re-encoded, audited, served),
alerts set and retired (audited), set-up notes and accessories, through the services, the
web page and the API."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from rv.errors import PermissionDenied, ValidationError
from rv.ingest import object_receive
from rv.models import AuditEvent, Patient, PatientAlert, PatientPhoto, Plan, SetupNote
from rv.services.banner import (
    patient_alert_add,
    patient_alert_retire,
    patient_photo_upload,
    setup_note_set,
)
from tests.rv.conftest import make_user
from tests.rv.plans import part10, vmat_plan

pytestmark = pytest.mark.django_db


def png_bytes(size: tuple[int, int] = (120, 160), mode: str = "RGB", extra: bytes = b"",
              **info: str) -> bytes:
    out = io.BytesIO()
    im = Image.new(mode, size, "#c08060" if mode == "RGB" else 128)
    if info:
        from PIL.PngImagePlugin import PngInfo

        meta = PngInfo()
        for k, v in info.items():
            meta.add_text(k, v)
        im.save(out, "PNG", pnginfo=meta)
    else:
        im.save(out, "PNG")
    return out.getvalue() + extra


def jpeg_bytes(size: tuple[int, int] = (600, 800)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "#7090b0").save(out, "JPEG", quality=90)
    return out.getvalue()


def named_patient(patient_id: str, name: str, birth: str = "19600101") -> Patient:
    ds = vmat_plan(patient_id=patient_id, arcs=1, control_points=3, leaf_pairs=2, fractions=5)
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: any name
    ds.PatientName = name
    ds.PatientBirthDate = birth
    result = object_receive(data=part10(ds), calling_ae="TPS")
    return Plan.objects.get(instance=result.instance).patient


SCRIPT = b"<script>alert(document.cookie)</script>"
# What a browser might sniff as HTML: a "PNG" that is a script after its signature
SCRIPT_AS_PNG = b"\x89PNG\r\n\x1a\n" + SCRIPT


@pytest.fixture
def patient() -> Patient:
    return named_patient("BAN01", "SMITH^John^Alan")


# --- photo ---------------------------------------------------------------------------------

def test_photo_is_re_encoded_and_audited(patient: Patient, therapist) -> None:  # type: ignore[no-untyped-def]
    data = png_bytes(mode="RGBA", extra=SCRIPT, Comment=SCRIPT.decode())
    photo = patient_photo_upload(patient=patient, data=data, user=therapist)
    stored = bytes(PatientPhoto.objects.get(pk=photo.pk).image)
    assert stored.startswith(b"\xff\xd8\xff") and b"script" not in stored
    assert b"script" not in bytes(photo.thumbnail)
    assert Image.open(io.BytesIO(stored)).size == (120, 160)
    assert max(Image.open(io.BytesIO(bytes(photo.thumbnail))).size) <= 96
    event = AuditEvent.objects.get(action="patient.photo_upload")
    assert event.object_id == str(photo.pk) and event.username == "theo"
    assert event.details["patient"] == patient.pk and event.details["uploaded_format"] == "PNG"
    assert event.details["replaces"] is None
    second = patient_photo_upload(patient=patient, data=jpeg_bytes((1600, 2000)),
                                  user=therapist)
    assert (second.width, second.height) == (640, 800)  # scaled to 800 px a side
    assert AuditEvent.objects.filter(action="patient.photo_upload").order_by("seq").last() \
        .details["replaces"] == photo.pk


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"%PDF-1.4 not a photo", "not a JPEG or PNG"),
    (SCRIPT, "not a JPEG or PNG"),
    (SCRIPT_AS_PNG, "cannot be read as a PNG"),
    (png_bytes()[:60], "cannot be read as a PNG"),            # truncated
    (png_bytes((9000, 10)), "largest taken is 8000 pixels"),   # too wide (a small file)
    (png_bytes((7000, 7000), mode="L"), "40 megapixels"),      # declares 49 MP
    (png_bytes((20, 20)), "at least 32 pixels"),
])
def test_photo_refused(patient: Patient, therapist, data: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        patient_photo_upload(patient=patient, data=data, user=therapist)
    assert not PatientPhoto.objects.exists()
    assert not AuditEvent.objects.filter(action="patient.photo_upload").exists()


def test_photo_too_large(patient: Patient, therapist, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_PHOTO_MAX_BYTES = 50_000
    with pytest.raises(ValidationError, match="larger than"):
        patient_photo_upload(patient=patient, data=jpeg_bytes() + b"\0" * 50_000,
                             user=therapist)


def test_photo_needs_a_clinical_role(patient: Patient) -> None:
    admin = make_user("records", "admin")
    with pytest.raises(PermissionDenied):
        patient_photo_upload(patient=patient, data=png_bytes(), user=admin)


def test_photo_upload_on_the_web_page(client: Client, patient: Patient, therapist,  # type: ignore[no-untyped-def]
                                      settings) -> None:
    client.force_login(therapist)
    url = f"/patients/{patient.pk}/banner/"
    page = client.get(url)
    assert page.status_code == 200 and b"Upload photo" in page.content

    def post(data: bytes, name: str = "face.png", content_type: str = "image/png"):  # type: ignore[no-untyped-def]
        from django.core.files.uploadedfile import SimpleUploadedFile

        return client.post(url, {"form": "photo", "photo": SimpleUploadedFile(
            name, data, content_type=content_type)})

    refused = post(SCRIPT_AS_PNG)  # a script named face.png, sent as image/png
    assert refused.status_code == 400
    assert "cannot be read as a PNG image" in refused.content.decode()
    assert 'role="alert"' in refused.content.decode()  # shown as the form's error
    assert post(b"just text", name="notes.txt", content_type="text/plain").status_code == 400
    settings.RV_PHOTO_MAX_BYTES = 50_000
    too_big = post(jpeg_bytes() + b"\0" * 60_000, name="big.jpg", content_type="image/jpeg")
    assert too_big.status_code == 400 and "larger than" in too_big.content.decode()
    settings.RV_PHOTO_MAX_BYTES = 5 * 1024 * 1024
    assert not PatientPhoto.objects.exists()
    done = post(jpeg_bytes(), name="face.jpg", content_type="image/jpeg")
    assert done.status_code == 302
    photo = PatientPhoto.objects.get()
    served = client.get(f"/patients/{patient.pk}/photos/{photo.pk}/")
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert "private" in served["Cache-Control"] and "max-age=31536000" in served["Cache-Control"]
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served.content == bytes(photo.image)
    again = client.get(f"/patients/{patient.pk}/photos/{photo.pk}/",
                       HTTP_IF_NONE_MATCH=served["ETag"])
    assert again.status_code == 304
    thumb = client.get(f"/patients/{patient.pk}/photos/{photo.pk}/thumbnail/")
    assert thumb.status_code == 200 and thumb.content == bytes(photo.thumbnail)
    assert client.get(f"/patients/{patient.pk + 1}/photos/{photo.pk}/").status_code == 404


def test_photo_served_only_to_clinical_users(client: Client, patient: Patient, therapist) -> None:  # type: ignore[no-untyped-def]
    photo = patient_photo_upload(patient=patient, data=png_bytes(), user=therapist)
    url = f"/patients/{patient.pk}/photos/{photo.pk}/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(make_user("records", "admin"))
    assert client.get(url).status_code == 403


def test_photo_through_the_api(patient: Patient, therapist, physician) -> None:  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(therapist)
    url = f"/api/v1/patients/{patient.pk}/photo/"
    bad = api.post(url, {"photo": io.BytesIO(SCRIPT_AS_PNG)}, format="multipart")
    assert bad.status_code == 400 and "cannot be read as a PNG" in bad.json()["message"]
    missing = api.post(url, {}, format="multipart")
    assert missing.status_code == 400 and "photo" in missing.json()["message"]
    made = api.post(url, {"photo": io.BytesIO(png_bytes())}, format="multipart")
    assert made.status_code == 201, made.json()
    assert made.json()["content_type"] == "image/jpeg"
    detail = api.get(f"/api/v1/patients/{patient.pk}/").json()
    assert detail["photo"]["id"] == made.json()["id"]
    assert detail["photo"]["url"] == f"/patients/{patient.pk}/photos/{made.json()['id']}/"
    admin = APIClient()
    admin.force_authenticate(make_user("records", "admin"))
    assert admin.post(url, {"photo": io.BytesIO(png_bytes())},
                      format="multipart").status_code == 403


# --- alerts --------------------------------------------------------------------------------

def test_alerts_set_and_retired_are_audited(patient: Patient, physician, therapist) -> None:  # type: ignore[no-untyped-def]
    alert = patient_alert_add(patient=patient, kind="DEVICE", text="Pacemaker, Medtronic",
                              user=physician)
    assert alert.created_by == physician and alert.retired_at is None
    added = AuditEvent.objects.get(action="patient.alert_add")
    assert added.object_type == "rv.patientalert" and added.object_id == str(alert.pk)
    assert added.details == {"patient": patient.pk, "patient_id": "BAN01", "kind": "DEVICE",
                             "text": "Pacemaker, Medtronic"}
    with pytest.raises(ValidationError, match="reason"):
        patient_alert_retire(alert=alert, reason="  ", user=therapist)
    done = patient_alert_retire(alert=alert, reason="explanted 2026-02", user=therapist)
    assert done.retired_by == therapist and done.retired_at is not None
    retired = AuditEvent.objects.get(action="patient.alert_retire")
    assert retired.details["reason"] == "explanted 2026-02" and retired.username == "theo"
    with pytest.raises(ValidationError, match="already retired"):
        patient_alert_retire(alert=alert, reason="again", user=therapist)
    assert PatientAlert.objects.filter(pk=alert.pk).exists()  # kept, never deleted


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("ALLERGY", "", "to what"), ("OTHER", " ", "Say what"), ("PIRATE", "x", "Unknown alert"),
    ("DEVICE", "x" * 501, "at most 500"),
])
def test_alert_refused(patient: Patient, physician, kind: str, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        patient_alert_add(patient=patient, kind=kind, text=text, user=physician)
    assert not PatientAlert.objects.exists()


def test_alerts_on_the_web_page(client: Client, patient: Patient, physicist) -> None:  # type: ignore[no-untyped-def]
    client.force_login(physicist)
    url = f"/patients/{patient.pk}/banner/"
    refused = client.post(url, {"form": "alert", "kind": "ALLERGY", "text": ""})
    assert refused.status_code == 400 and "to what" in refused.content.decode()
    assert client.post(url, {"form": "alert", "kind": "ALLERGY", "text": "Latex"}
                       ).status_code == 302
    alert = PatientAlert.objects.get()
    chart = client.get(f"/patients/{patient.pk}/").content.decode()
    assert "Allergy</strong>: Latex" in chart
    assert client.post(url, {"form": "retire", "alert": alert.pk, "reason": "tested: none"}
                       ).status_code == 302
    chart = client.get(f"/patients/{patient.pk}/").content.decode()
    assert "Alert retired: Allergy: Latex." in chart  # the message, once
    assert "alert-allergy" not in chart and "No alerts" in chart


def test_alerts_through_the_api(patient: Patient, therapist) -> None:  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(therapist)
    made = api.post(f"/api/v1/patients/{patient.pk}/alerts/",
                    {"kind": "DO_NOT_IMAGE", "text": "pregnant"}, format="json")
    assert made.status_code == 201 and made.json()["kind_display"] == "Do not image"
    bad = api.post(f"/api/v1/patients/{patient.pk}/alerts/", {"kind": "ALLERGY"},
                   format="json")
    assert bad.status_code == 400 and "to what" in bad.json()["message"]
    unknown = api.post(f"/api/v1/patients/{patient.pk}/alerts/", {"kind": "NOPE"},
                       format="json")
    assert unknown.status_code == 400
    detail = api.get(f"/api/v1/patients/{patient.pk}/").json()
    assert [a["kind"] for a in detail["alerts"]] == ["DO_NOT_IMAGE"]
    assert detail["display_name"] == "SMITH, John A." and detail["age"].endswith(" y")
    retired = api.post(f"/api/v1/patient-alerts/{made.json()['id']}/retire/",
                       {"reason": "delivered"}, format="json")
    assert retired.status_code == 200 and retired.json()["retired_by"] == "theo"
    assert api.get(f"/api/v1/patients/{patient.pk}/").json()["alerts"] == []
    listed = api.get(f"/api/v1/patient-alerts/?patient={patient.pk}").json()
    assert listed["count"] == 1
    assert api.get(f"/api/v1/patient-alerts/?patient={patient.pk}&active=true"
                   ).json()["count"] == 0


# --- set-up notes ---------------------------------------------------------------------------

def test_setup_notes_of_patient_and_course(patient: Patient, therapist, physician) -> None:  # type: ignore[no-untyped-def]
    course = patient.courses.get()
    note = setup_note_set(patient=patient, notes="Arms up on the wing board",
                          accessories=["Wing board", " knee rest ", "", "Wing board"],
                          user=therapist)
    assert note.accessories == ["Wing board", "knee rest"] and note.course is None
    setup_note_set(patient=patient, course=course, notes="Bolus 5 mm on the scar",
                   accessories=["Bolus 5 mm"], user=therapist)
    again = setup_note_set(patient=patient, notes="Arms up", accessories=[], user=therapist)
    assert again.pk == note.pk and SetupNote.objects.count() == 2
    last = AuditEvent.objects.filter(action="patient.setup_note_set").order_by("seq").last()
    assert last.details["before"] == {"notes": "Arms up on the wing board",
                                      "accessories": ["Wing board", "knee rest"]}
    assert last.details["after"] == {"notes": "Arms up", "accessories": []}
    with pytest.raises(PermissionDenied):
        setup_note_set(patient=patient, notes="x", accessories=[], user=physician)
    other = named_patient("BAN02", "JONES^Ann")
    with pytest.raises(ValidationError, match="another patient"):
        setup_note_set(patient=other, course=course, notes="x", accessories=[],
                       user=therapist)


def test_setup_notes_on_the_web_and_api(client: Client, patient: Patient, therapist) -> None:  # type: ignore[no-untyped-def]
    course = patient.courses.get()
    client.force_login(therapist)
    url = f"/patients/{patient.pk}/banner/"
    assert client.post(url, {"form": "setup", "course": course.pk, "notes": "Mask 3-point",
                             "accessories": "Mask\r\nHead rest B\r\n"}).status_code == 302
    plan_page = client.get(f"/plans/{patient.plans.get().pk}/").content.decode()
    assert "Mask 3-point" in plan_page and "Head rest B" in plan_page
    assert client.post(url, {"form": "setup", "notes": "x" * 4001, "accessories": ""}
                       ).status_code == 400
    api = APIClient()
    api.force_authenticate(therapist)
    got = api.put(f"/api/v1/patients/{patient.pk}/setup-notes/",
                  {"notes": "Feet first", "accessories": ["Knee fix"]}, format="json")
    assert got.status_code == 200 and got.json()["course"] is None
    wrong = api.put(f"/api/v1/patients/{patient.pk}/setup-notes/",
                    {"course": 999999, "notes": "x"}, format="json")
    assert wrong.status_code == 400
    notes = api.get(f"/api/v1/patients/{patient.pk}/").json()["setup_notes"]
    assert {n["course_code"]: n["accessories"] for n in notes} == {
        None: ["Knee fix"], course.code: ["Mask", "Head rest B"]}
