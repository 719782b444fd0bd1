"""Storage Commitment on the pages: /api/v1/commitments/ and the admin (admins only), the
exports' commitment state, the node role `commit` (API, admin, dicom_node)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from archive.services import instance_store
from dicom_net.exports import export_enqueue
from dicom_net.models import CommitmentRequest, ExportJob, Node
from dicom_net.services import node_add
from tests.helpers import make_ct, to_bytes

pytestmark = pytest.mark.django_db


def client_for(role: str) -> APIClient:
    user = User.objects.create_user(username=role, password="x-" + role)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def requests_both_ways() -> tuple[CommitmentRequest, CommitmentRequest]:
    pacs = node_add(name="pacs", ae_title="PACS", host="127.0.0.1", port=104,
                    receives_exports=True, commit_exports=True)
    instance = instance_store(data=to_bytes(make_ct()), source="generated").instance
    (job,) = export_enqueue(instance=instance)
    ref = [instance.sop_class_uid, instance.sop_instance_uid]
    sent = CommitmentRequest.objects.create(
        direction="sent", transaction_uid="1.2.3.4", node=pacs, peer_ae="PACS",
        status=CommitmentRequest.Status.REQUESTED, references=[ref], attempts=1)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.COMMITTING, commitment=ExportJob.Commitment.AWAITED,
        commitment_request=sent, commit_attempts=1)
    received = CommitmentRequest.objects.create(
        direction="received", transaction_uid="1.2.3.5", peer_ae="TPS",
        status=CommitmentRequest.Status.UNDELIVERABLE, references=[ref, ["1.2", "9.9"]],
        committed=[ref], failed=[["1.2", "9.9", 0x0112, "not in the archive"]],
        event_type=2, last_error="TPS is not a registered node: no address", attempts=1,
        next_attempt_at=timezone.now())
    return sent, received


def test_admins_read_commitment_requests_both_ways(requests_both_ways) -> None:  # type: ignore[no-untyped-def]
    sent, received = requests_both_ways
    admin = client_for("admin")
    body = admin.get("/api/v1/commitments/").json()
    assert body["count"] == 2
    got = admin.get("/api/v1/commitments/", {"direction": "received"}).json()["results"]
    assert [(r["transaction_uid"], r["status"], r["node_name"]) for r in got] == [
        ("1.2.3.5", "undeliverable", None)]
    assert got[0]["failed"] == [["1.2", "9.9", 0x0112, "not in the archive"]]
    detail = admin.get(f"/api/v1/commitments/{sent.pk}/").json()
    assert (detail["direction"], detail["node_name"], detail["status"]) == (
        "sent", "pacs", "requested")
    for role in ("therapist", "physicist", "physician"):
        refused = client_for(role).get("/api/v1/commitments/")
        assert refused.status_code == 403
        assert refused.json()["message"] == "Only an admin may manage DICOM nodes."
    schema = admin.get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/commitments/" in schema["paths"]


def test_the_exports_list_shows_the_commitment_state(requests_both_ways) -> None:  # type: ignore[no-untyped-def]
    sent, _ = requests_both_ways
    api = client_for("therapist")
    (job,) = api.get("/api/v1/exports/", {"commitment": "awaited"}).json()["results"]
    assert (job["status"], job["commitment"], job["commit_attempts"],
            job["commitment_transaction_uid"], job["committed_at"]) == (
        "committing", "awaited", 1, "1.2.3.4", None)
    assert api.get("/api/v1/exports/", {"commitment": "committed"}).json()["count"] == 0
    retry = client_for("physicist").post(f"/api/v1/exports/{job['id']}/retry/")
    assert retry.status_code == 409  # it is still in the queue: awaiting the commitment


def test_the_admin_site_lists_commitments_to_admins_only(requests_both_ways) -> None:  # type: ignore[no-untyped-def]
    admin = User.objects.create_user("office", password="x-office", is_staff=True)
    admin.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/dicom_net/commitmentrequest/")
    assert page.status_code == 200 and b"1.2.3.5" in page.content
    assert client.get("/admin/dicom_net/exportjob/?commitment=awaited").status_code == 200
    physicist = User.objects.create_user("phys", password="x-phys", is_staff=True)
    physicist.groups.add(Group.objects.get(name="physicist"))
    client.force_login(physicist)
    assert client.get("/admin/dicom_net/commitmentrequest/").status_code == 403


def test_the_commit_role_needs_the_exports_role() -> None:
    out = StringIO()
    call_command("dicom_node", "add", "pacs", "--ae", "PACS", "--host", "10.0.0.9",
                 "--port", "104", "--roles", "exports,commit", stdout=out)
    assert "exports, commit" in out.getvalue()
    assert Node.objects.get(name="pacs").roles == ["receives_exports", "commit_exports"]
    with pytest.raises(CommandError, match="only a node that receives exports"):
        call_command("dicom_node", "add", "ois", "--ae", "OIS", "--host", "10.0.0.8",
                     "--port", "104", "--roles", "store,commit", stdout=StringIO())
    admin = client_for("admin")
    base = {"name": "arc", "ae_title": "ARC", "host": "10.0.0.7", "port": 104,
            "commit_exports": True}
    refused = admin.post("/api/v1/nodes/", base, format="json")
    assert refused.status_code == 400 and "commit_exports" in str(refused.json())
    made = admin.post("/api/v1/nodes/", {**base, "receives_exports": True}, format="json")
    assert made.status_code == 201, made.json()
    assert "commit_exports" in made.json()["roles"]
