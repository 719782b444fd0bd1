"""/api/v1/exports/: list and filter the export queue; retry a job (admins, physicists)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from archive.services import instance_store
from dicom_net.exports import export_enqueue
from dicom_net.models import ExportJob
from dicom_net.services import node_add
from tests.helpers import make_ct, to_bytes


def client_for(role: str) -> APIClient:
    user = User.objects.create_user(username=role, password="x-" + role)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def jobs(db) -> list[ExportJob]:  # type: ignore[no-untyped-def]
    node_add(name="tps", ae_title="TPS", host="127.0.0.1", port=104, receives_exports=True)
    node_add(name="ois", ae_title="OIS", host="127.0.0.1", port=105, receives_exports=True)
    instance = instance_store(data=to_bytes(make_ct()), source="generated").instance
    made = export_enqueue(instance=instance)
    ExportJob.objects.filter(pk=made[0].pk).update(status=ExportJob.Status.FAILED,
                                                   attempts=8, last_error="0xA700: disk full")
    return made


def test_list_and_filter(jobs: list[ExportJob]) -> None:
    api = client_for("therapist")
    body = api.get("/api/v1/exports/").json()
    assert body["count"] == 2
    failed = api.get("/api/v1/exports/", {"status": "failed"}).json()["results"]
    assert [(j["id"], j["last_error"], j["node_name"]) for j in failed] == [
        (jobs[0].pk, "0xA700: disk full", jobs[0].node.name)]
    assert APIClient().get("/api/v1/exports/").status_code in (401, 403)


def test_retry_needs_the_role_and_a_finished_job(jobs: list[ExportJob]) -> None:
    url = f"/api/v1/exports/{jobs[0].pk}/retry/"
    refused = client_for("therapist").post(url)
    assert refused.status_code == 403
    assert refused.json()["message"] == "Only an admin or physicist may send an export again."
    physicist = client_for("physicist")
    done = physicist.post(url)
    assert done.status_code == 200, done.json()
    assert (done.json()["status"], done.json()["attempts"]) == ("pending", 0)
    again = physicist.post(url)
    assert again.status_code == 409
    assert "already queued" in again.json()["message"]


def test_schema_lists_the_endpoints(jobs: list[ExportJob]) -> None:
    schema = client_for("admin").get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/exports/" in schema["paths"]
    assert "/api/v1/exports/{id}/retry/" in schema["paths"]
