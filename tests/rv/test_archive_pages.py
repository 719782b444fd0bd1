"""Login, the patients page (searchable) and the study page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from archive.models import Study
from archive.services import instance_store
from tests.helpers import make_ct, to_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def therapist() -> User:
    user = User.objects.create_user("tina", password="correct-horse-9")
    user.groups.add(Group.objects.get(name="therapist"))
    return user


def test_roles_exist_as_groups() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "therapist", "physicist", "physician", "admin"}


@pytest.mark.parametrize("url", ["/", "/archive/patients/"])
def test_pages_need_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_with_wrong_password_says_so(client: Client, therapist: User) -> None:
    response = client.post("/login/", {"username": "tina", "password": "wrong"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_login_then_patients_and_search(client: Client, therapist: User) -> None:
    instance_store(data=to_bytes(make_ct(patient_id="MRN-001", patient_name="Smith^Alice")))
    instance_store(data=to_bytes(make_ct(patient_id="MRN-002", patient_name="Jones^Bob")))
    response = client.post("/login/", {"username": "tina", "password": "correct-horse-9"},
                           follow=True)
    assert "Treatment console" in response.content.decode()  # a therapist's first page
    page = client.get("/archive/patients/").content.decode()
    assert "Smith^Alice" in page and "Jones^Bob" in page
    found = client.get("/archive/patients/", {"q": "smith"}).content.decode()
    assert "Smith^Alice" in found and "Jones^Bob" not in found
    by_id = client.get("/archive/patients/", {"q": "MRN-002"}).content.decode()
    assert "Jones^Bob" in by_id and "Smith^Alice" not in by_id
    none = client.get("/archive/patients/", {"q": "nobody"}).content.decode()
    assert "No patient matches" in none


def test_patient_and_study_pages_show_counts(client: Client, therapist: User) -> None:
    study_uid, series_uid = "1.2.3.4.5", "1.2.3.4.6"
    for _ in range(2):
        instance_store(data=to_bytes(make_ct(study_uid=study_uid, series_uid=series_uid)),
                       calling_ae="CT_SIM")
    client.force_login(therapist)
    patients = client.get("/archive/patients/").content.decode()
    assert "<td class=\"num\">2</td>" in patients  # two instances
    study = Study.objects.get()
    patient_page = client.get(f"/archive/patients/{study.patient_id}/").content.decode()
    assert study_uid in patient_page
    study_page = client.get(f"/archive/studies/{study.pk}/").content.decode()
    assert "(2 instances)" in study_page and "CT_SIM" in study_page
    assert client.get("/archive/studies/99999/").status_code == 404


def test_logout(client: Client, therapist: User) -> None:
    client.force_login(therapist)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_api_token_and_schema(client: Client, therapist: User) -> None:
    bad = client.post("/api/v1/auth/token/", {"username": "tina", "password": "nope"},
                      content_type="application/json")
    assert bad.status_code == 400 and "message" in bad.json()
    good = client.post("/api/v1/auth/token/",
                       {"username": "tina", "password": "correct-horse-9"},
                       content_type="application/json")
    assert good.status_code == 200 and len(good.json()["token"]) >= 20
    assert client.get("/api/schema/").status_code == 401  # the schema is for signed-in users
    schema = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {good.json()['token']}")
    assert schema.status_code == 200 and b"/api/v1/auth/token/" in schema.content
