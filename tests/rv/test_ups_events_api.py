"""/api/v1/ups-subscriptions/ and /api/v1/ups-events/ (issue 14): read only, admins and
physicists (rv.roles UPS_EVENTS_READ); and the admin site's pages for them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from pydicom.dataset import Dataset
from rest_framework.test import APIClient

from rv.models import UpsEvent, UpsSubscription
from rv.roles import MESSAGES, Action
from rv.services.ups_events import scp_status_announce, ups_subscribe
from rv.ups_events import FILTERED_UID, GLOBAL_UID, RESTARTED

pytestmark = pytest.mark.django_db


def _user(role: str, *, staff: bool = False) -> User:
    n = User.objects.count()
    user = User.objects.create_user(username=f"{role}{n}", password="x-" + role,
                                    is_staff=staff)
    user.groups.add(Group.objects.get(name=role))
    return user


def _client(role: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(_user(role))
    return client


@pytest.fixture
def subscribed() -> None:
    keys = Dataset()
    keys.ScheduledStationNameCodeSequence = [Dataset()]
    keys.ScheduledStationNameCodeSequence[0].CodeValue = "TrueBeam1"
    assert ups_subscribe(receiving_ae="DASH", uid=GLOBAL_UID, deletion_lock=False, keys=None,
                         calling_ae="DASH").status == 0
    assert ups_subscribe(receiving_ae="PPS", uid=FILTERED_UID, deletion_lock=True, keys=keys,
                         calling_ae="OIS").status == 0
    assert scp_status_announce(status=RESTARTED) == ["DASH", "PPS"]


def test_admins_and_physicists_read_the_subscriptions_and_the_queue(subscribed) -> None:  # type: ignore[no-untyped-def]
    for role in ("admin", "physicist"):
        api = _client(role)
        subs = api.get("/api/v1/ups-subscriptions/").json()["results"]
        assert [(s["ae_title"], s["kind"], s["deletion_lock"], s["workitem"],
                 s["requested_by"]) for s in subs] == [
            ("DASH", "global", False, None, "DASH"), ("PPS", "filtered", True, None, "OIS")]
        assert "00404025" in subs[1]["filter"]
        events = api.get("/api/v1/ups-events/", {"ae_title": "PPS"}).json()["results"]
        assert [(e["event_type"], e["event_type_name"], e["status"], e["workitem_uid"])
                for e in events] == [(4, "SCP Status Change", "pending", GLOBAL_UID)]
        assert events[0]["event_info"]["00741242"]["Value"] == ["RESTARTED"]
        pending = api.get("/api/v1/ups-events/", {"status": "pending"}).json()
        assert pending["count"] == UpsEvent.objects.count() == 2


def test_others_are_refused(subscribed) -> None:  # type: ignore[no-untyped-def]
    for role in ("therapist", "physician"):
        refused = _client(role).get("/api/v1/ups-subscriptions/")
        assert refused.status_code == 403
        assert refused.json()["message"] == MESSAGES[Action.UPS_EVENTS_READ]
        assert _client(role).get("/api/v1/ups-events/").status_code == 403
    assert APIClient().get("/api/v1/ups-events/").status_code in (401, 403)
    # read only: nothing is changed through the API
    api = _client("admin")
    sub = UpsSubscription.objects.first()
    assert sub is not None
    assert api.delete(f"/api/v1/ups-subscriptions/{sub.pk}/").status_code == 405
    assert api.post("/api/v1/ups-subscriptions/", {"ae_title": "X"}).status_code == 405


def test_the_admin_site_shows_them_to_the_same_roles(subscribed, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(_user("physicist", staff=True))
    assert client.get("/admin/rv/upssubscription/").status_code == 200
    page = client.get("/admin/rv/upsevent/")
    assert page.status_code == 200 and b"PPS" in page.content
    client.force_login(_user("therapist", staff=True))
    assert client.get("/admin/rv/upsevent/").status_code == 403
    assert client.get("/admin/rv/upssubscription/").status_code == 403
