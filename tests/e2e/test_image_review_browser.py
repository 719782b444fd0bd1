"""In a real browser: a therapist opens a portal image from the plan page, sees it
rendered at its size, changes the window, and approves it with a comment."""

from __future__ import annotations

from typing import Any

import pytest

from rv.ingest import object_receive
from rv.models import AuditEvent, RTImageLink
from tests.e2e.test_treatment_browser import PASSWORD, _user
from tests.rv.conftest import receive_plan
from tests.rv.plans import part10
from tests.rv.records import rt_image

pytestmark = pytest.mark.django_db(transaction=True)


def test_open_an_image_and_approve_it(page: Any, live_server: Any) -> None:
    from tests.e2e.conftest import login

    therapist = _user("tara", "therapist")
    plan = receive_plan(patient_id="E2EIMG")
    object_receive(data=part10(rt_image(plan=plan, fraction=1, label="EPID Arc1 fx1")),
                   calling_ae="EPID")
    image = RTImageLink.objects.get()
    login(page, live_server.url, "tara", PASSWORD)
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    page.get_by_role("link", name="EPID Arc1 fx1", exact=True).click()
    page.get_by_role("heading", name="EPID Arc1 fx1").wait_for()
    shown = page.locator("figure.rt-image img")
    shown.wait_for()
    page.wait_for_function("document.querySelector('figure.rt-image img').complete")
    assert shown.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    page.get_by_label("Window centre").fill("1000")
    page.get_by_label("Window width").fill("500")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**wc=1000**")
    assert "wc=1000&ww=500" in (shown.get_attribute("src") or "")
    page.get_by_label("Comment").fill("field edges as planned")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Image approved.").wait_for()
    image.refresh_from_db()
    assert (image.review_status, image.reviewed_by, image.comment) == (
        "APPROVED", therapist, "field edges as planned")
    assert AuditEvent.objects.filter(action="rt_image.approve", user=therapist).exists()
