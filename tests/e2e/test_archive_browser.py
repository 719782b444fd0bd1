"""In a real browser: log in and find a stored patient on the patients page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from archive.services import instance_store
from tests.e2e.conftest import login
from tests.helpers import make_ct, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_and_search_patients(page: Any, live_server: Any) -> None:
    user = User.objects.create_user("tara", password="a-long-test-password")
    user.groups.add(Group.objects.get_or_create(name="therapist")[0])  # flushed by earlier
    # transactional tests, which empty the tables the role migration filled
    instance_store(data=to_bytes(make_ct(patient_id="MRN-77", patient_name="BROWSER, Betty")))
    instance_store(data=to_bytes(make_ct(patient_id="MRN-78", patient_name="OTHER, Oscar")))

    page.goto(live_server.url + "/")
    assert "/login/" in page.url  # the UI needs a login
    login(page, live_server.url, "tara", "wrong-password")
    assert page.get_by_role("alert").inner_text().startswith("Your user name and password")
    login(page, live_server.url, "tara", "a-long-test-password")
    page.get_by_role("heading", name="Treatment console").wait_for()  # a therapist's home
    page.get_by_role("link", name="Archive").click()
    page.get_by_role("heading", name="Patients in the archive").wait_for()
    assert page.get_by_role("cell", name="BROWSER, Betty").is_visible()  # names for people

    page.get_by_label("Patient ID or name").fill("oscar")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**q=oscar**")
    assert page.get_by_role("cell", name="OTHER, Oscar").is_visible()
    assert page.get_by_role("cell", name="BROWSER, Betty").count() == 0

    page.get_by_role("link", name="MRN-78").click()
    page.get_by_role("heading", name="OTHER, Oscar").wait_for()
    page.get_by_role("link", name="(no description)").click()
    assert "1 instance" in page.content()
