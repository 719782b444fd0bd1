"""In a real browser (issue 15): a therapist opens a patient's set-up check from the day list,
sees the banner with the photo and an alert, confirms the identity there, checks and
records; the chart shows the same banner (saved as docs/screenshots/chart.png)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from PIL import Image, ImageDraw

from rv.ingest import object_receive
from rv.models import Plan, Session
from rv.services.banner import patient_alert_add, patient_photo_upload, setup_note_set
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from tests.e2e.conftest import login
from tests.rv.conftest import machine_of
from tests.rv.plans import part10, vmat_plan

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _portrait() -> bytes:
    """A drawn stand-in for a face photo (no real person)."""
    im = Image.new("RGB", (320, 400), "#d9e2ec")
    d = ImageDraw.Draw(im)
    d.ellipse((40, 250, 280, 520), fill="#3e6b8a")          # shoulders
    d.rectangle((135, 215, 185, 270), fill="#e0b18e")       # neck
    d.ellipse((95, 80, 225, 240), fill="#e8bd98")           # face
    d.pieslice((88, 60, 232, 190), 180, 360, fill="#5b3a29")  # hair
    d.ellipse((128, 145, 144, 157), fill="#2d2d2d")
    d.ellipse((176, 145, 192, 157), fill="#2d2d2d")
    d.arc((135, 175, 185, 210), 20, 160, fill="#8a4b3c", width=3)
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def _patient_today(physicist: User, therapist: User) -> Plan:
    ds = vmat_plan(patient_id="E2E-B1", arcs=1, control_points=3, leaf_pairs=2, fractions=5)
    ds.PatientName = "SMITH^JOHN^ALAN"
    ds.PatientBirthDate = "19500302"
    ds.PatientSex = "M"
    plan = Plan.objects.get(instance=object_receive(data=part10(ds), calling_ae="TPS").instance)
    plan = plan_approve(plan=plan, user=physicist, password=PASSWORD)
    appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist,
                          start=timezone.localdate(), weekdays=tuple(range(7)))
    patient = plan.patient
    patient_photo_upload(patient=patient, data=_portrait(), user=therapist)
    patient_alert_add(patient=patient, kind="DEVICE", text="Pacemaker: cardiology check "
                      "after each fraction", user=physicist)
    patient_alert_add(patient=patient, kind="ALLERGY", text="Latex", user=therapist)
    setup_note_set(patient=patient, notes="Supine, arms up on the wing board",
                   accessories=["Wing board", "Knee rest B"], user=therapist)
    setup_note_set(patient=patient, course=plan.course, notes="Bolus 5 mm on the scar",
                   accessories=["Bolus 5 mm"], user=therapist)
    return plan


def test_therapist_sees_the_banner_and_confirms_identity(page: Any, live_server: Any) -> None:
    physicist, therapist = _user("phoebe", "physicist"), _user("tara", "therapist")
    plan = _patient_today(physicist, therapist)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, live_server.url, "tara", PASSWORD)
    page.goto(f"{live_server.url}/console/TrueBeam1/")
    row = page.get_by_role("row").filter(has_text="E2E-B1")
    assert "SMITH, John A." in row.inner_text() and "02 Mar 1950" in row.inner_text()
    assert row.get_by_role("img", name="Photo of SMITH, John A.").is_visible()
    assert row.locator(".alert-device").is_visible()
    row.get_by_role("link", name="Check set-up for fraction 1").click()
    page.get_by_role("heading", name=re.compile("Set-up check, fraction 1")).wait_for()

    banner = page.get_by_role("region", name="Patient")
    photo = banner.get_by_role("img", name="Photo of SMITH, John A.")
    assert photo.is_visible()
    # loaded (decode() waits for it): the re-encoded photo, served to the logged-in user
    assert photo.evaluate("img => img.decode().then(() => img.naturalWidth)") == 320
    assert banner.locator(".pb-name").inner_text() == "SMITH, John A."
    assert "02 Mar 1950" in banner.locator(".pb-born").inner_text()
    assert banner.locator(".pb-id").inner_text() == "E2E-B1"
    alert = banner.locator("li.alert-device")
    assert alert.is_visible()
    assert "Pacemaker / implanted device: Pacemaker: cardiology check" in alert.inner_text()
    assert "Bolus 5 mm" in banner.inner_text() and "Wing board" in banner.inner_text()

    # identity sits with the banner, big, and the check refuses without it
    confirm = banner.get_by_label("I have confirmed the patient's identity: name, date of "
                                  "birth, ID and photo")
    assert confirm.bounding_box()["height"] >= 24
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_text("Confirm the patient's identity").first.wait_for()
    assert not plan.clearances.exists()
    page.get_by_role("region", name="Patient").get_by_label(
        "I have confirmed the patient's identity").check()
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name=re.compile("Record fraction 1")).wait_for()
    assert page.get_by_text(re.compile("Identity confirmed at the set-up check by tara")
                            ).is_visible()
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified.").wait_for()
    assert "/console/TrueBeam1/" in page.url
    assert Session.objects.get().identity_confirmed

    page.goto(f"{live_server.url}/patients/{plan.patient_id}/")
    chart_photo = page.get_by_role("region", name="Patient").get_by_role("img")
    assert chart_photo.evaluate("img => img.decode().then(() => img.naturalWidth)") == 320
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chart.png"), full_page=True)
