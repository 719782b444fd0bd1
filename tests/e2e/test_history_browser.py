"""In a real browser: a physicist finds a patient's delivered beams on the history page,
pages through them, and opens the patient's treatment timeline."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from rv.models import BeamDelivery, Patient, Session
from tests.e2e.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"


def test_physicist_filters_history_and_opens_a_timeline(page: Any, live_server: Any) -> None:
    call_command("seed_clinic", patients=4, machines=2, years=1, seed=3, verbosity=0)
    user = User.objects.create_user("hist_phys", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="physicist")[0])
    patient = Patient.objects.order_by("id").first()
    assert patient is not None
    login(page, live_server.url, "hist_phys", PASSWORD)
    page.get_by_role("link", name="History").click()
    page.get_by_role("heading", name="Treatment history").wait_for()
    page.get_by_label("Patient id").fill(patient.patient_id)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.history tbody tr")
    assert rows.count() == min(50, BeamDelivery.objects.filter(
        session__plan__patient=patient).count())
    assert page.get_by_role("link", name="Download CSV").get_attribute("href").endswith(
        f"patient_id={patient.patient_id}")
    if page.get_by_role("link", name="older →").count():
        page.get_by_role("link", name="older →").click()
        page.get_by_role("link", name="← newer").wait_for()
    rows.first.get_by_role("link").click()
    page.get_by_role("heading", name="Treatment timeline").wait_for()
    assert page.locator("ol.timeline > li").count() == Session.objects.filter(
        plan__patient=patient).count()
