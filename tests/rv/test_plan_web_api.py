"""The patient chart, the plan page with approval, tolerance table pages and the REST API."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from rv.models import Plan, ToleranceTable
from tests.rv.conftest import PASSWORD, receive_plan
from tests.rv.plans import brachy_plan, part10

pytestmark = pytest.mark.django_db


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_patient_chart_lists_courses_and_plans(therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(patient_id="W1", label="CHEST", fractions=25)
    page = _client(therapist).get(reverse("rv-patient", args=[plan.patient_id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Course C1" in html and "CHEST" in html and "0 / 25" in html and "Received" in html
    listing = _client(therapist).get(reverse("rv-patients"), {"q": "W1"}).content.decode()
    assert "W1" in listing and 'href="/patients/' in listing


def test_plan_page_shows_beams_and_fraction_groups(therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(arcs=2, control_points=5, machine="TB7")
    html = _client(therapist).get(reverse("rv-plan", args=[plan.pk])).content.decode()
    assert "Arc1" in html and "Arc2" in html and "TB7" in html
    assert "251.00" in html and "252.00" in html  # MU per beam
    assert "181" in html  # gantry start
    assert 'name="password"' not in html  # a therapist sees no approval form


def test_brachy_plan_page(therapist) -> None:  # type: ignore[no-untyped-def]
    from rv.ingest import object_receive

    result = object_receive(data=part10(brachy_plan()))
    plan = Plan.objects.get(instance=result.instance)
    html = _client(therapist).get(reverse("rv-plan", args=[plan.pk])).content.decode()
    assert "Ir-192" in html and "120.50" in html and "Afterloader1" in html


def test_approval_form_needs_password(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    client = _client(physicist)
    url = reverse("rv-plan-action", args=[plan.pk, "approve"])
    page = client.post(url, {"password": "nope"}, follow=True)
    assert "The signature is refused" in page.content.decode()
    plan.refresh_from_db()
    assert plan.status == "RECEIVED"
    page = client.post(url, {"password": PASSWORD}, follow=True)
    assert "Plan approved for treatment." in page.content.decode()
    plan.refresh_from_db()
    assert plan.status == "APPROVED"


def test_therapist_post_to_approve_is_refused(therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    page = _client(therapist).post(reverse("rv-plan-action", args=[plan.pk, "approve"]),
                                   {"password": PASSWORD}, follow=True)
    assert "Only a physicist or physician" in page.content.decode()
    plan.refresh_from_db()
    assert plan.status == "RECEIVED"


def test_tolerance_table_pages(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(machine="TB8")
    beam = plan.beams.get()
    client = _client(physicist)
    page = client.post(reverse("rv-tolerance-tables"),
                       {"machine": beam.machine_id, "label": "Std", "gantry_angle": "1",
                        "mlc": "2"}, follow=True)
    assert "Tolerance table created." in page.content.decode()
    table = ToleranceTable.objects.get(label="Std")
    ToleranceTable.objects.filter(pk=table.pk).update(used_for_delivery=True)
    page = client.post(reverse("rv-tolerance-table", args=[table.pk]),
                       {"gantry_angle": "1.5", "mlc": "2"}, follow=True)
    assert "Saved as version 2." in page.content.decode()
    beam.tolerance_table = None
    beam.save()
    client.post(reverse("rv-beam-tolerance", args=[beam.pk]),
                {"table": ToleranceTable.objects.get(label="Std", version=2).pk})
    beam.refresh_from_db()
    assert beam.tolerance_table.version == 2  # type: ignore[attr-defined]


def test_api_lists_and_filters_plans(therapist) -> None:  # type: ignore[no-untyped-def]
    receive_plan(patient_id="A1", label="ONE")
    receive_plan(patient_id="A2", label="TWO", arcs=2)
    api = APIClient()
    api.force_authenticate(therapist)
    body = api.get("/api/v1/plans/", {"patient_id": "A2"}).json()
    assert body["count"] == 1 and body["results"][0]["label"] == "TWO"
    plan_id = body["results"][0]["id"]
    detail = api.get(f"/api/v1/plans/{plan_id}/").json()
    assert [b["number"] for b in detail["beams"]] == [1, 2]
    assert detail["fraction_groups"][0]["fractions_planned"] == 30
    assert detail["fraction_groups"][0]["beams"][0]["meterset"] == 251.0
    assert detail["beams"][0]["first_control_point"]["gantry"] == 181.0
    courses = api.get("/api/v1/courses/", {"patient": detail["patient"]}).json()
    assert [c["code"] for c in courses["results"]] == ["C1"]
    patients = api.get("/api/v1/patients/", {"patient_id": "A1"}).json()
    assert patients["count"] == 1


def test_api_approve(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    api = APIClient()
    api.force_authenticate(therapist)
    refused = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": PASSWORD},
                       format="json")
    assert refused.status_code == 403 and "physicist" in refused.json()["message"]
    api.force_authenticate(physicist)
    wrong = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": "x"}, format="json")
    assert wrong.status_code == 403 and "password" in wrong.json()["message"]
    ok = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": PASSWORD}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "APPROVED"
    again = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": PASSWORD},
                     format="json")
    assert again.status_code == 409 and "APPROVED" in again.json()["message"]


def test_api_refuses_approval_of_plan_unapproved_in_tps(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(approval="UNAPPROVED")
    api = APIClient()
    api.force_authenticate(physicist)
    response = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": PASSWORD},
                        format="json")
    assert response.status_code == 409
    assert "RT Plan Approval Status is UNAPPROVED" in response.json()["message"]


def test_schema_documents_plans(therapist) -> None:  # type: ignore[no-untyped-def]
    client = _client(therapist)
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/plans/{id}/approve/" in schema and "PlanApproveRequest" in schema
