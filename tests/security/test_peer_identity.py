"""Who a peer is: a registered node's AE title counts only from the host it is registered
at (name, address or network), and what may be registered as a node."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from dicom_net.models import AssociationLog, Node
from dicom_net.services import node_add
from dicom_net.validation import host_matches
from tests.helpers import eventually
from tests.security.conftest import echo

REJECTED_CALLING_AE = "rejected (1, 1, 3)"  # permanent, service user, calling AE not known


def _node(ae_title: str, host: str) -> Node:
    return node_add(name=ae_title.lower(), ae_title=ae_title, host=host, port=104)


def test_a_node_is_only_itself_from_its_host(start_scp) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: a node registered at one host was accepted from any address."""
    port = start_scp(RV_ACCEPT_UNKNOWN_AE=False)
    _node("LINAC", "127.0.0.2")
    assert echo(port, ae_title="LINAC", bind="127.0.0.1") == REJECTED_CALLING_AE
    assert echo(port, ae_title="LINAC", bind="127.0.0.2") == "0x0000"

    def logged() -> None:
        row = AssociationLog.objects.filter(outcome=AssociationLog.Outcome.REJECTED).get()
        assert row.peer_host == "127.0.0.1"
        assert "registered at 127.0.0.2" in row.reason

    eventually(logged)


@pytest.mark.parametrize(("host", "from_here"), [
    ("127.0.0.0/30", "0x0000"),
    ("127.0.0.2/31", REJECTED_CALLING_AE),
    ("localhost", "0x0000"),
    ("::ffff:127.0.0.1", "0x0000"),
    ("10.0.0.1", REJECTED_CALLING_AE),
])
def test_host_forms(start_scp, host: str, from_here: str) -> None:  # type: ignore[no-untyped-def]
    port = start_scp(RV_ACCEPT_UNKNOWN_AE=False)
    node_add(name="tps", ae_title="TPS", host=host, port=104)
    assert echo(port, ae_title="TPS", bind="127.0.0.1") == from_here


def test_the_check_can_be_turned_off(start_scp) -> None:  # type: ignore[no-untyped-def]
    port = start_scp(RV_ACCEPT_UNKNOWN_AE=False, RV_DICOM_CHECK_PEER_HOST=False)
    _node("LINAC", "10.9.9.9")
    assert echo(port, ae_title="LINAC", bind="127.0.0.1") == "0x0000"


def test_host_matching() -> None:
    assert host_matches("10.1.2.0/24", "10.1.2.77")
    assert not host_matches("10.1.2.0/24", "10.1.3.1")
    assert host_matches("fd00::/64", "fd00::5")
    assert not host_matches("fd00::/64", "10.1.2.3")
    assert host_matches("10.1.2.3", "::ffff:10.1.2.3")
    assert not host_matches("no-such-host.invalid", "127.0.0.1")
    assert not host_matches("127.0.0.1", "not an address")


BAD_AE_TITLES = ["A\\B", "    ", "", "X" * 17, "A\x01B", "LI\tNAC", "ÄÖ"]
BAD_HOSTS = ["exa mple", "10.0.0.1/33", "10.0.0.1/8", "-bad.example", "a..b", "",
             "host_name", "1.2.3.999", "x" * 64 + ".example", "http://10.0.0.1"]


@pytest.mark.parametrize("ae_title", BAD_AE_TITLES)
def test_bad_ae_titles_are_refused(db, ae_title: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        node_add(name="n", ae_title=ae_title, host="10.0.0.1", port=104)
    with pytest.raises(CommandError):
        call_command("dicom_node", "add", "n", "--ae", ae_title, "--host", "10.0.0.1",
                     "--port", "104")
    assert not Node.objects.exists()


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_bad_hosts_are_refused(db, host: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        node_add(name="n", ae_title="N", host=host, port=104)
    with pytest.raises(CommandError):
        call_command("dicom_node", "add", "n", "--ae", "N", "--host", host, "--port", "104")
    assert not Node.objects.exists()


@pytest.mark.parametrize("host", ["pacs.example.org", "PACS-1", "10.0.0.1", "fd00::1",
                                  "10.1.2.0/24", "fd00::/64", "localhost."])
def test_good_hosts_are_taken(db, host: str) -> None:  # type: ignore[no-untyped-def]
    assert node_add(name="n", ae_title="N", host=host, port=104).host == host


def test_a_network_cannot_be_an_export_or_move_destination(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="network"):
        node_add(name="n", ae_title="N", host="10.1.2.0/24", port=104, receives_exports=True)
    with pytest.raises(ValidationError, match="network"):
        node_add(name="n", ae_title="N", host="10.1.2.0/24", port=104, move_destination=True)


def test_ae_titles_are_unique(db) -> None:  # type: ignore[no-untyped-def]
    _node("LINAC", "10.0.0.1")
    with pytest.raises(ValidationError, match="already exists"):
        node_add(name="other", ae_title="LINAC", host="10.0.0.2", port=104)
    with pytest.raises(IntegrityError), transaction.atomic():  # the database says so too
        Node.objects.create(name="other", ae_title="LINAC", host="10.0.0.2", port=104)
    assert Node.objects.count() == 1


def _admin_client() -> APIClient:
    user = User.objects.create_user(username="admin", password="x-admin-pass")
    user.groups.add(Group.objects.get(name="admin"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_refuses_bad_nodes_with_a_message(db) -> None:  # type: ignore[no-untyped-def]
    client = _admin_client()
    base = {"name": "n", "ae_title": "N", "host": "10.0.0.1", "port": 104}
    for change in ({"host": "exa mple"}, {"ae_title": "A\\B"}, {"ae_title": "   "},
                   {"host": "10.0.0.0/33"}):
        response = client.post("/api/v1/nodes/", {**base, **change}, format="json")
        assert response.status_code == 400, (change, response.content)
        assert response.json()
    assert client.post("/api/v1/nodes/", base, format="json").status_code == 201
    again = client.post("/api/v1/nodes/", {**base, "name": "m"}, format="json")
    assert again.status_code == 400
    assert "ae_title" in again.json()["errors"]
    node = Node.objects.get()
    bad = client.patch(f"/api/v1/nodes/{node.pk}/", {"host": "not a host"}, format="json")
    assert bad.status_code == 400
    assert Node.objects.get().host == "10.0.0.1"


def test_admin_refuses_bad_nodes(db, client) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_superuser(username="root", password="x-root-pass")
    client.login(username="root", password="x-root-pass")
    response = client.post("/admin/dicom_net/node/add/", {
        "name": "n", "ae_title": "A\\B", "host": "exa mple", "port": 104})
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert "ae_title" in errors and "host" in errors
    assert not Node.objects.exists()
