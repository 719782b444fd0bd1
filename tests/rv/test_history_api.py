"""Treatment history (issue 7): /api/v1/history/ and its CSV, the /history/ pages, the
records and nodes resources, cursor pages on sessions and audit events, and the seed
command that makes the data they are tried on."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import Client
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    RTBeamsTreatmentRecordStorage,
    RTTreatmentSummaryRecordStorage,
)
from rest_framework.test import APIClient

from archive.models import Instance
from dicom_net.models import Node
from rv.history import COLUMNS, Cursor, history_deliveries, history_page
from rv.models import BeamDelivery, Override, Patient, Session, TreatmentMachine
from rv.roles import ADMIN, PHYSICIAN, PHYSICIST, THERAPIST
from tests.rv.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic() -> None:
    call_command("seed_clinic", patients=6, machines=2, years=1, seed=11, verbosity=0)


def _api(role: str) -> APIClient:
    api = APIClient()
    api.force_authenticate(make_user(f"h_{role}", role))
    return api


def _walk(api: APIClient, url: str, params: dict[str, object]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    page = api.get(url, params).json()
    while True:
        rows += page["results"]
        if not page["next"]:
            return rows
        page = api.get(page["next"]).json()


def test_seed_is_deterministic_and_consistent(clinic) -> None:  # type: ignore[no-untyped-def]
    sessions = Session.objects.count()
    assert Patient.objects.filter(patient_id__startswith="SYN").count() == 6
    assert TreatmentMachine.objects.filter(name__startswith="SEED_LINAC").count() == 2
    assert BeamDelivery.objects.count() >= 2 * sessions
    # Every delivery's beam belongs to its session's plan; every override to a delivery of it.
    assert not BeamDelivery.objects.exclude(beam__plan=F("session__plan")).exists()
    assert not Override.objects.exclude(beam_delivery__session=F("session")).exists()
    first = list(Session.objects.order_by("id").values_list("treated_at", "machine__name"))
    call_command("seed_clinic", patients=6, machines=2, years=1, seed=11, verbosity=0)
    assert Session.objects.count() == 2 * sessions  # a second clinic beside the first
    again = list(Session.objects.order_by("id").values_list("treated_at", "machine__name"))
    assert again[sessions:] == first  # same seed, same clinic


def test_seed_refuses_the_full_size_on_sqlite(settings) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("the refusal is SQLite's")
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("seed_clinic", verbosity=0)


@pytest.mark.parametrize("role", [ADMIN, PHYSICIST, PHYSICIAN, THERAPIST])
def test_history_permissions(clinic, role: str) -> None:  # type: ignore[no-untyped-def]
    api = _api(role)
    allowed = role != THERAPIST
    for url in ("/api/v1/history/", "/api/v1/history/csv/"):
        got = api.get(url)
        assert (got.status_code == 200) is allowed
        if not allowed:
            assert "history" in got.json()["message"]
    assert APIClient().get("/api/v1/history/").status_code in (401, 403)


def test_history_rows_and_cursor_pages(clinic) -> None:  # type: ignore[no-untyped-def]
    api = _api(ADMIN)
    first = api.get("/api/v1/history/", {"page_size": 7}).json()
    assert set(first) == {"next", "previous", "results"} and first["previous"] is None
    assert list(first["results"][0]) == list(COLUMNS)
    rows = _walk(api, "/api/v1/history/", {"page_size": 7})
    assert len(rows) == BeamDelivery.objects.count()
    assert len({r["id"] for r in rows}) == len(rows)
    keys = [(r["treated_at"], r["session"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)  # newest first, no gap, no repeat
    # previous from the second page is the first page again
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None
    assert api.get("/api/v1/history/", {"cursor": "nonsense"}).status_code == 400
    assert "page_size" in api.get("/api/v1/history/", {"page_size": "x"}).json()["message"]


def test_history_filters(clinic) -> None:  # type: ignore[no-untyped-def]
    api = _api(PHYSICIST)
    session = Session.objects.select_related("plan__patient", "machine", "recorded_by",
                                             "plan__course").order_by("id")[5]
    patient = session.plan.patient
    cases = {
        "patient_id": (patient.patient_id, lambda r: r["patient_id"] == patient.patient_id),
        "patient": (patient.pk, lambda r: r["patient"] == patient.pk),
        "name": (patient.patient_name.split("^")[0].lower(),
                 lambda r: patient.patient_name.split("^")[0] in r["patient_name"]),
        "plan": (session.plan_id, lambda r: r["plan"] == session.plan_id),
        "course": (session.plan.course_id, lambda r: r["course"] == session.plan.course_id),
        "machine": (session.machine.name, lambda r: r["machine"] == session.machine.name),
        "therapist": (session.recorded_by.username,
                      lambda r: r["therapist"] == session.recorded_by.username),
        "verification_status": ("VERIFIED_OVR",
                                lambda r: r["verification_status"] == "VERIFIED_OVR"),
    }
    for name, (value, check) in cases.items():
        rows = _walk(api, "/api/v1/history/", {name: value, "page_size": 100})
        assert rows or name == "verification_status", name
        assert all(check(r) for r in rows), name
    day = session.treated_at.date()
    rows = _walk(api, "/api/v1/history/", {"date_from": day, "date_to": day,
                                           "machine": session.machine.name})
    assert session.pk in {r["session"] for r in rows}  # type: ignore[index]
    assert all(r["treated_at"][:10] == day.isoformat() for r in rows)  # type: ignore[index]
    bad = api.get("/api/v1/history/", {"date_from": "yesterday"})
    assert bad.status_code == 400 and "date_from" in bad.json()["message"]


def test_overrides_show_in_history(clinic) -> None:  # type: ignore[no-untyped-def]
    override = Override.objects.select_related("beam_delivery").first()
    if override is None:
        pytest.skip("this seed drew no override")
    page = history_page(qs=history_deliveries().filter(
        pk=override.beam_delivery_id))  # type: ignore[misc]
    assert page.rows[0]["override"] == override.reason


def test_history_csv_has_every_filtered_row(clinic) -> None:  # type: ignore[no-untyped-def]
    api = _api(ADMIN)
    machine = TreatmentMachine.objects.filter(name__startswith="SEED_LINAC").first()
    got = api.get("/api/v1/history/csv/", {"machine": machine.name})
    assert got["Content-Type"].startswith("text/csv") and got.streaming
    table = list(csv.reader(io.StringIO(b"".join(got.streaming_content).decode())))
    assert table[0] == list(COLUMNS)
    assert len(table) - 1 == BeamDelivery.objects.filter(session__machine=machine).count()
    assert {row[COLUMNS_INDEX["machine"]] for row in table[1:]} == {machine.name}


COLUMNS_INDEX = {name: i for i, name in enumerate(COLUMNS)}


def test_cursor_round_trip() -> None:
    from datetime import UTC, datetime

    c = Cursor(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), 7, 9, backwards=True)
    assert Cursor.decode(c.encode()) == c
    for bad in ("", "xyz", Cursor(datetime(2025, 1, 2), 1, 2).encode()):
        with pytest.raises(ValueError):
            Cursor.decode(bad)


def test_history_pages_for_admins_and_physicists(client: Client, clinic) -> None:  # type: ignore[no-untyped-def]
    client.force_login(make_user("h_page", PHYSICIST))
    patient = Patient.objects.filter(patient_id__startswith="SYN").first()
    page = client.get("/history/", {"patient_id": patient.patient_id}).content.decode()
    assert patient.patient_id in page and "Download CSV" in page and "older →" in page
    assert "/history/csv/?patient_id=" in page
    older = page.split('href="?')[-1].split('"')[0].replace("&amp;", "&")
    assert "← newer" in client.get(f"/history/?{older}").content.decode()
    timeline = client.get(f"/history/patients/{patient.pk}/").content.decode()
    sessions = Session.objects.filter(plan__patient=patient).count()
    assert timeline.count('<li id="session-') == sessions and "Gy" in timeline
    csv_text = b"".join(client.get("/history/csv/", {"patient": patient.pk})
                        .streaming_content).decode()  # type: ignore[attr-defined]
    assert csv_text.count("\n") - 1 == BeamDelivery.objects.filter(
        session__plan__patient=patient).count()
    client.force_login(make_user("h_rtt", THERAPIST))
    assert client.get("/history/").status_code == 403
    assert client.get(f"/history/patients/{patient.pk}/").status_code == 403


def test_sessions_and_audit_events_use_cursor_pages(clinic) -> None:  # type: ignore[no-untyped-def]
    api = _api(PHYSICIST)  # reads sessions and the audit trail (rv.roles)
    page = api.get("/api/v1/sessions/", {"page_size": 5}).json()
    assert set(page) == {"next", "previous", "results"} and len(page["results"]) == 5
    seen = [s["id"] for s in page["results"]]
    nxt = api.get(page["next"]).json()
    assert not set(seen) & {s["id"] for s in nxt["results"]}
    assert page["results"][0]["beams"] and "overrides" in page["results"][0]
    patient = Patient.objects.filter(patient_id__startswith="SYN").first()
    mine = api.get("/api/v1/sessions/", {"patient_id": patient.patient_id,
                                         "page_size": 500}).json()["results"]
    assert len(mine) == Session.objects.filter(plan__patient=patient).count()
    audit = api.get("/api/v1/audit-events/").json()
    assert set(audit) == {"next", "previous", "results"}


def test_records_list_treatment_records_only(clinic) -> None:  # type: ignore[no-untyped-def]
    api = _api(THERAPIST)  # every role reads the archive's records
    body = api.get("/api/v1/records/").json()
    assert body["results"] == []  # synthetic plans are RT Plans, not records
    assert api.get("/api/v1/records/", {"kind": "beams"}).status_code == 200
    assert api.get("/api/v1/records/", {"kind": "nonsense"}).status_code == 400


def test_nodes_read_by_all_managed_by_admins() -> None:
    body = {"name": "tps", "ae_title": "TPS", "host": "10.0.0.2", "port": 104,
            "receives_exports": True}
    rtt = _api(THERAPIST)
    refused = rtt.post("/api/v1/nodes/", body, format="json")
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
    admin = _api(ADMIN)
    made = admin.post("/api/v1/nodes/", body, format="json")
    assert made.status_code == 201, made.json()
    assert made.json()["roles"] == ["can_store", "can_query", "receives_exports"]
    pk = made.json()["id"]
    assert rtt.get("/api/v1/nodes/", {"name": "tps"}).json()["results"][0]["id"] == pk
    assert admin.post("/api/v1/nodes/", body, format="json").status_code == 400
    bad = admin.patch(f"/api/v1/nodes/{pk}/", {"ae_title": "BAD\\AE"}, format="json")
    assert bad.status_code == 400 and "message" in bad.json()
    moved = admin.patch(f"/api/v1/nodes/{pk}/", {"port": 11113}, format="json")
    assert moved.status_code == 200 and moved.json()["port"] == 11113
    assert rtt.delete(f"/api/v1/nodes/{pk}/").status_code == 403
    assert admin.delete(f"/api/v1/nodes/{pk}/").status_code == 204
    assert not Node.objects.exists()


def test_records_link_sessions_and_plans(clinic) -> None:  # type: ignore[no-untyped-def]
    session = Session.objects.select_related("plan__instance__series").order_by("id").first()
    series = session.plan.instance.series
    uid = "2.25.1234"
    for sop_uid, sop_class in ((uid, RTBeamsTreatmentRecordStorage),
                               ("2.25.1235", RTTreatmentSummaryRecordStorage)):
        Instance.objects.create(series=series, sop_instance_uid=sop_uid,
                                sop_class_uid=sop_class, sha256="0" * 64, size=1, path="x",
                                transfer_syntax_uid=ExplicitVRLittleEndian)
    Session.objects.filter(pk=session.pk).update(record_sop_instance_uid=uid)
    api = _api(PHYSICIST)
    body = api.get("/api/v1/records/").json()
    assert {r["kind"] for r in body["results"]} == {"beams", "summary"}
    beams = api.get("/api/v1/records/", {"kind": "beams"}).json()["results"]
    assert len(beams) == 1 and beams[0]["session"] == session.pk
    assert beams[0]["plan"] == session.plan_id
    assert beams[0]["patient_id"] == session.plan.patient.patient_id
    one = api.get(f"/api/v1/records/{beams[0]['id']}/").json()
    assert one["sop_instance_uid"] == uid
    plan_instance = session.plan.instance_id
    assert api.get(f"/api/v1/records/{plan_instance}/").status_code == 404  # an RT Plan
