"""The TDW-II worklist as the clinic sees it: /api/v1/workitems (list, filters, detail, a
physicist's review and release), the console's day list, the machine's worklist page, the
machines page's TDW-II switch and the console's banner on a fraction a device has claimed.

Steps are made the real way: an approved plan scheduled on a machine marked TDW-II
(rv.services.schedule -> worklist_sync). The device's claim and progress (RO-60, RO-62) are
written onto the row as rv.services.workitem_actions would (that door needs rv/ups.py)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from rv.models import Appointment, AuditEvent, Plan, SetupClearance, TreatmentMachine, Workitem
from rv.roles import MESSAGES, Action
from rv.services.esign import REFUSED
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from rv.services.workitems import machine_tdw_set
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan
from tests.rv.treat import BeamInput, session_record
from tests.rv.worklist import delivery_instruction  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db
W = Workitem
SECRET = "1.2.826.0.1.3680043.10.999.424242"  # the claim's Transaction UID: never shown
FIELDS = {"id", "sop_instance_uid", "state", "readiness", "readiness_reasons", "machine",
          "plan", "plan_label", "plan_revision", "patient", "patient_id", "patient_name",
          "appointment", "fraction_number", "delivery_type", "scheduled_start",
          "performer_ae", "claimed_at", "finished_at", "progress", "review_reasons",
          "reviewed_by", "reviewed_at", "review_comment", "cancel_reason", "replaces",
          "instruction", "flagged"}


@dataclass
class Clinic:
    plan: Plan
    machine: TreatmentMachine
    appointments: list[Appointment]

    def step(self, fraction: int) -> Workitem:
        return W.objects.get(plan=self.plan, fraction_number=fraction,
                             state__in=(W.State.SCHEDULED, W.State.IN_PROGRESS))


@pytest.fixture
def clinic(physicist, therapist, delivery_instruction) -> Clinic:  # type: ignore[no-untyped-def]  # noqa: F811
    """Three daily fractions from today of an approved plan on a TDW-II machine."""
    plan = plan_approve(plan=receive_plan(fractions=3), user=physicist, password=PASSWORD)
    machine = machine_tdw_set(machine=machine_of(plan), enabled=True, user=physicist)
    made = appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(),
                                 user=therapist, weekdays=tuple(range(7)))
    return Clinic(plan=plan, machine=machine, appointments=made)


def claim(wi: Workitem, *, ae: str = "TDD_1", percent: float | None = 40.0,
          beam: int | None = 1) -> Workitem:
    """The device claims the step (RO-60) and reports progress (RO-62)."""
    now = timezone.now()
    W.objects.filter(pk=wi.pk).update(
        state=W.State.IN_PROGRESS, transaction_uid=SECRET, performer_ae=ae, claimed_at=now,
        progress_percent=percent, progress_beam=beam, progress_description="Beam 1 on",
        progress_at=now)
    wi.refresh_from_db()
    return wi


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- the API ---------------------------------------------------------------------------------

def test_schedule_makes_one_step_per_appointment(clinic: Clinic) -> None:
    steps = list(W.objects.order_by("fraction_number"))
    assert [(s.fraction_number, s.state, s.appointment_id) for s in steps] == [
        (a.fraction_number, W.State.SCHEDULED, a.pk) for a in clinic.appointments]


def test_list_is_paginated_and_filters(therapist, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    client = api(therapist)
    listed = client.get("/api/v1/workitems/").json()
    assert listed["count"] == 3 and "next" in listed
    assert [r["fraction_number"] for r in listed["results"]] == [1, 2, 3]
    assert ids(client.get("/api/v1/workitems/?limit=1&offset=1")) == [clinic.step(2).pk]
    first, second, third = (clinic.step(n).pk for n in (1, 2, 3))
    claim(clinic.step(1))
    today = timezone.localdate()
    by = {
        f"machine={clinic.machine.name}": [first, second, third],
        f"machine={clinic.machine.pk}": [first, second, third],
        "machine=NO_SUCH_LINAC": [],
        "state=IN PROGRESS": [first],
        "state=SCHEDULED": [second, third],
        "state=SCHEDULED&state=IN PROGRESS": [first, second, third],
        f"date={today}": [first],
        f"date={today + timedelta(days=1)}": [second],
        f"date_from={today + timedelta(days=1)}": [second, third],
        f"date_from={today}&date_to={today + timedelta(days=1)}": [first, second],
        f"plan={clinic.plan.pk}": [first, second, third],
        f"plan={clinic.plan.pk + 1000}": [],
        f"patient_id={clinic.plan.patient.patient_id}": [first, second, third],
        "patient_id=SOMEONE_ELSE": [],
        "fraction_number=3": [third],
        "flagged=true": [],
        "flagged=false": [first, second, third],
    }
    for query, expected in by.items():
        assert ids(client.get(f"/api/v1/workitems/?{query}")) == expected, query
    W.objects.filter(pk=third).update(review_reasons=["Beam 1 ended MACHINE."])
    assert ids(client.get("/api/v1/workitems/?flagged=true")) == [third]
    assert ids(client.get("/api/v1/workitems/?flagged=false")) == [first, second]
    bad = client.get("/api/v1/workitems/?date=yesterday")
    assert bad.status_code == 400 and "date" in bad.json()["message"]
    assert client.get("/api/v1/workitems/?state=DONE").status_code == 400


def test_detail_shows_the_step_and_never_its_transaction_uid(physician, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    wi = claim(clinic.step(1), percent=62.5, beam=1)
    client = api(physician)
    body = client.get(f"/api/v1/workitems/{wi.pk}/").json()
    assert set(body) == FIELDS
    patient = clinic.plan.patient
    assert body["sop_instance_uid"] == wi.sop_instance_uid and body["state"] == "IN PROGRESS"
    assert body["machine"] == clinic.machine.name and body["plan"] == clinic.plan.pk
    assert body["plan_label"] == clinic.plan.label and body["plan_revision"] == 1
    assert (body["patient_id"], body["patient_name"]) == (patient.patient_id,
                                                          patient.patient_name)
    assert body["fraction_number"] == 1 and body["delivery_type"] == "TREATMENT"
    assert body["performer_ae"] == "TDD_1" and body["claimed_at"] is not None
    assert body["progress"]["percent"] == 62.5 and body["progress"]["beam"] == 1
    assert body["progress"]["description"] == "Beam 1 on" and body["progress"]["at"]
    assert body["instruction"] == wi.instruction.sop_instance_uid
    assert body["replaces"] is None and body["flagged"] is False
    assert body["readiness"] in W.Readiness.values
    for url in ("/api/v1/workitems/", f"/api/v1/workitems/{wi.pk}/",
                "/api/v1/workitems/?state=IN PROGRESS"):
        text = client.get(url).content.decode()
        assert SECRET not in text and "transaction" not in text.lower()
        assert "dataset" not in text
    assert client.get("/api/v1/workitems/999999/").status_code == 404


def test_roles_the_api_refuses(therapist, physician, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    admin = make_user("ada", "admin")
    refused = api(admin).get("/api/v1/workitems/")
    assert refused.status_code == 403
    assert refused.json() == {"message": MESSAGES[Action.CLINICAL_READ]}
    assert api(admin).get(f"/api/v1/workitems/{clinic.step(1).pk}/").status_code == 403
    assert APIClient().get("/api/v1/workitems/").status_code in (401, 403)
    W.objects.filter(pk=clinic.step(2).pk).update(review_reasons=["Beam 1 ended MACHINE."])
    review = api(therapist).post(f"/api/v1/workitems/{clinic.step(2).pk}/review/",
                                 {"password": PASSWORD, "comment": "fine"}, format="json")
    assert review.status_code == 403
    assert review.json() == {"message": MESSAGES[Action.WORKITEM_REVIEW]}
    wi = claim(clinic.step(1))
    release = api(physician).post(f"/api/v1/workitems/{wi.pk}/release/",
                                  {"password": PASSWORD, "reason": "gone"}, format="json")
    assert release.status_code == 403
    assert release.json() == {"message": MESSAGES[Action.WORKITEM_RELEASE]}
    assert clinic.step(2).reviewed_at is None and clinic.step(1).state == W.State.IN_PROGRESS
    assert not AuditEvent.objects.filter(action__in=("workitem.review", "workitem.cancel"))


def _interrupted(clinic: Clinic, therapist: Any) -> Workitem:
    """Fraction 1 stopped by the machine at the console: its step becomes a CONTINUATION
    that waits on a physicist's review."""
    beam = clinic.plan.beams.get()
    session_record(plan=clinic.plan, machine=clinic.machine, recorded_by=therapist,
                   appointment=clinic.appointments[0],
                   beams=[BeamInput(beam, 100.0, termination_status="MACHINE")])
    wi = clinic.step(1)
    assert wi.delivery_type == W.DeliveryType.CONTINUATION and wi.flagged
    assert wi.readiness == W.Readiness.INCOMPLETE and wi.replaces is not None
    return wi


def test_review_signed_by_a_physicist(physicist, therapist, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    wi = _interrupted(clinic, therapist)
    client = api(physicist)
    url = f"/api/v1/workitems/{wi.pk}/review/"
    assert ids(client.get("/api/v1/workitems/?flagged=true")) == [wi.pk]
    wrong = client.post(url, {"password": "not it", "comment": "ok"}, format="json")
    assert wrong.status_code == 403 and wrong.json() == {"message": REFUSED}
    refusal = AuditEvent.objects.get(action="esign.refused")
    assert refusal.details["action"] == Action.WORKITEM_REVIEW
    assert refusal.object_id == str(wi.pk)
    wi.refresh_from_db()
    assert wi.reviewed_at is None and wi.flagged
    blank = client.post(url, {"password": PASSWORD, "comment": ""}, format="json")
    assert blank.status_code == 400 and "comment" in blank.json()["message"]
    assert client.post(url, [], format="json").status_code == 400
    done = client.post(url, {"password": PASSWORD, "comment": "Stopped on an interlock; "
                                                               "continue."}, format="json")
    assert done.status_code == 200, done.content
    body = done.json()
    assert body["reviewed_by"] == physicist.username and body["reviewed_at"]
    assert body["review_comment"] == "Stopped on an interlock; continue."
    assert body["flagged"] is False and body["delivery_type"] == "CONTINUATION"
    assert not any("review" in r for r in body["readiness_reasons"])
    wi.refresh_from_db()
    assert wi.reviewed_by == physicist and not wi.flagged
    assert AuditEvent.objects.filter(action="workitem.review", object_id=str(wi.pk)).exists()
    again = client.post(url, {"password": PASSWORD, "comment": "again"}, format="json")
    assert again.status_code == 400 and "reviewed already" in again.json()["message"]
    nothing = client.post(f"/api/v1/workitems/{clinic.step(2).pk}/review/",
                          {"password": PASSWORD, "comment": "x"}, format="json")
    assert nothing.status_code == 400 and "nothing" in nothing.json()["message"]


def test_release_of_a_stale_claim(physicist, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    wi = claim(clinic.step(1))
    client = api(physicist)
    url = f"/api/v1/workitems/{wi.pk}/release/"
    wrong = client.post(url, {"password": "nope", "reason": "TDD crashed"}, format="json")
    assert wrong.status_code == 403 and wrong.json() == {"message": REFUSED}
    assert AuditEvent.objects.get(action="esign.refused").details["action"] == \
        Action.WORKITEM_RELEASE
    assert clinic.step(1).pk == wi.pk and clinic.step(1).state == W.State.IN_PROGRESS
    assert client.post(url, {"password": PASSWORD}, format="json").status_code == 400
    done = client.post(url, {"password": PASSWORD, "reason": "TDD crashed"}, format="json")
    assert done.status_code == 200, done.content
    body = done.json()
    assert body["state"] == "CANCELED" and "TDD crashed" in body["cancel_reason"]
    assert body["finished_at"] and SECRET not in done.content.decode()
    successor = clinic.step(1)  # the fraction is still due: a new step for it
    assert successor.pk != wi.pk and successor.state == W.State.SCHEDULED
    assert api(physicist).get(f"/api/v1/workitems/{successor.pk}/").json()["state"] == \
        "SCHEDULED"
    again = client.post(f"/api/v1/workitems/{successor.pk}/release/",
                        {"password": PASSWORD, "reason": "x"}, format="json")
    assert again.status_code == 400 and "IN PROGRESS" in again.json()["message"]
    assert AuditEvent.objects.filter(action="workitem.cancel", object_id=str(wi.pk),
                                     username=physicist.username).exists()


def test_machines_api_says_which_machine_is_a_tdw_device(therapist, clinic: Clinic) -> None:  # type: ignore[no-untyped-def]
    body = api(therapist).get(f"/api/v1/machines/{clinic.machine.pk}/").json()
    assert body["tdw_delivery"] is True


# --- the pages -------------------------------------------------------------------------------

def test_day_list_shows_each_appointments_step(client: Client, therapist, physicist,  # type: ignore[no-untyped-def]
                                               clinic: Clinic) -> None:
    claim(clinic.step(1), percent=40.0, beam=1)
    client.force_login(therapist)
    beam = clinic.plan.beams.get()
    day = page(client, f"/console/{clinic.machine.name}/")
    assert "Worklist" in day and "IN PROGRESS" in day and "TDD_1" in day
    assert "40%" in day and f"beam 1 {beam.name}" in day
    assert "Being delivered by TDD_1" in day and "Check set-up for fraction 1" not in day
    assert SECRET not in day
    later = page(client, f"/console/{clinic.machine.name}/?date="
                         f"{clinic.appointments[2].date:%Y-%m-%d}")
    assert "SCHEDULED" in later and "INCOMPLETE" in later
    assert "ready the day before" in later  # the reason, beneath and on hover
    assert 'title="Scheduled on' in later
    tomorrow = page(client, f"/console/{clinic.machine.name}/?date="
                            f"{clinic.appointments[1].date:%Y-%m-%d}")
    assert "SCHEDULED" in tomorrow and "READY" in tomorrow and "Review needed" not in tomorrow
    machine_tdw_set(machine=clinic.machine, enabled=False, user=physicist)
    plain = page(client, f"/console/{clinic.machine.name}/")
    assert "IN PROGRESS" not in plain and "Readiness" not in plain


def test_worklist_page_states_progress_and_forms_by_role(client: Client, therapist, physicist,  # type: ignore[no-untyped-def]
                                                         physician, clinic: Clinic) -> None:
    claim(clinic.step(1), percent=75.0, beam=1)
    url = f"/machines/{clinic.machine.pk}/worklist/"
    tomorrow = f"{url}?date={clinic.appointments[1].date:%Y-%m-%d}"
    W.objects.filter(pk=clinic.step(2).pk).update(review_reasons=["Beam 1 ended MACHINE."])
    client.force_login(therapist)
    today = page(client, url)
    assert "IN PROGRESS" in today and "TDD_1" in today and "75%" in today
    assert f'href="/plans/{clinic.plan.pk}/"' in today and clinic.plan.label in today
    assert clinic.step(1).sop_instance_uid in today and SECRET not in today
    assert clinic.step(2).sop_instance_uid not in today  # another day
    flagged = page(client, tomorrow)
    assert "Review needed" in flagged and "Beam 1 ended MACHINE." in flagged
    for text in (today, flagged):  # a therapist sees no signing form
        assert "/review/" not in text and "/release/" not in text
        assert 'name="password"' not in text
    client.force_login(physician)  # reviews, never releases
    assert f"/workitems/{clinic.step(2).pk}/review/" in page(client, tomorrow)
    assert "/release/" not in page(client, url)
    client.force_login(physicist)
    assert f"/workitems/{clinic.step(1).pk}/release/" in page(client, url)
    assert "Release from TDD_1" in page(client, url)
    assert f"/workitems/{clinic.step(2).pk}/review/" in page(client, tomorrow)
    assert "/review/" not in page(client, url)  # nothing flagged today
    assert clinic.step(1).sop_instance_uid in page(client, f"{url}?date=not-a-day")  # today
    assert client.get(f"/machines/{clinic.machine.pk + 1000}/worklist/").status_code == 404
    client.force_login(make_user("ada", "admin"))
    assert client.get(url).status_code == 403


def test_review_and_release_through_the_page(client: Client, physicist, therapist,  # type: ignore[no-untyped-def]
                                             clinic: Clinic) -> None:
    wi = _interrupted(clinic, therapist)
    client.force_login(physicist)
    back = f"/machines/{clinic.machine.pk}/worklist/?date={clinic.appointments[0].date:%Y-%m-%d}"
    wrong = client.post(f"/workitems/{wi.pk}/review/", {"password": "x", "comment": "ok"})
    assert wrong.status_code == 302 and wrong["Location"] == back
    assert REFUSED in page(client, back)
    wi.refresh_from_db()
    assert wi.reviewed_at is None
    assert client.post(f"/workitems/{wi.pk}/review/",
                       {"password": PASSWORD, "comment": "continue"}).status_code == 302
    assert "reviewed" in page(client, back)
    wi.refresh_from_db()
    assert wi.reviewed_by == physicist and not wi.flagged
    claim(wi)
    client.force_login(therapist)  # the service refuses the therapist
    client.post(f"/workitems/{wi.pk}/release/", {"password": PASSWORD, "reason": "r"})
    assert MESSAGES[Action.WORKITEM_RELEASE] in page(client, back)
    assert clinic.step(1).pk == wi.pk
    client.force_login(physicist)
    client.post(f"/workitems/{wi.pk}/release/", {"password": PASSWORD, "reason": "hung"})
    wi.refresh_from_db()
    assert wi.state == W.State.CANCELED and "hung" in wi.cancel_reason
    assert "released from TDD_1" in page(client, back)
    assert client.get(f"/workitems/{wi.pk}/release/").status_code == 405


def test_physicist_marks_a_machine_tdw(client: Client, physicist, therapist,  # type: ignore[no-untyped-def]
                                       delivery_instruction) -> None:  # noqa: F811
    plan = plan_approve(plan=receive_plan(fractions=2), user=physicist, password=PASSWORD)
    machine = machine_of(plan)
    appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(),
                          user=therapist, weekdays=tuple(range(7)))
    assert not W.objects.exists()
    client.force_login(therapist)
    text = page(client, "/machines/")
    assert f"/machines/{machine.pk}/tdw/" not in text
    client.post(f"/machines/{machine.pk}/tdw/", {"tdw_delivery": "on"})
    assert MESSAGES[Action.MACHINE_EDIT] in page(client, "/machines/")
    machine.refresh_from_db()
    assert not machine.tdw_delivery and not W.objects.exists()
    client.force_login(physicist)
    assert f"/machines/{machine.pk}/tdw/" in page(client, "/machines/")
    response = client.post(f"/machines/{machine.pk}/tdw/", {"tdw_delivery": "on"})
    assert response.status_code == 302 and response["Location"] == "/machines/"
    machine.refresh_from_db()
    assert machine.tdw_delivery
    assert W.objects.filter(state=W.State.SCHEDULED, machine=machine).count() == 2
    text = page(client, "/machines/")
    assert "takes its fractions from the TDW-II worklist" in text
    assert f"/machines/{machine.pk}/worklist/" in text
    event = AuditEvent.objects.get(action="machine.tdw_delivery")
    assert event.details == {"machine": machine.name, "enabled": True}
    assert "TDW-II" in page(client, "/console/")
    client.post(f"/machines/{machine.pk}/tdw/", {})  # unticked
    machine.refresh_from_db()
    assert not machine.tdw_delivery
    assert W.objects.filter(state=W.State.CANCELED).count() == 2
    assert not W.objects.filter(state=W.State.SCHEDULED).exists()


def test_console_banner_and_refusal_on_a_claimed_fraction(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                          clinic: Clinic) -> None:
    a = clinic.appointments[0]
    check_url = f"/console/{clinic.machine.name}/appointments/{a.pk}/check/"
    record_url = f"/console/{clinic.machine.name}/appointments/{a.pk}/record/"
    client.force_login(therapist)
    assert "being delivered by" not in page(client, check_url)
    claim(clinic.step(1), ae="TDD_7")
    for url in (check_url, record_url):
        text = page(client, url)
        assert "Fraction 1 is being delivered by TDD_7 from the TDW-II worklist" in text
        assert f"/machines/{clinic.machine.pk}/worklist/" in text and SECRET not in text
    checked = client.post(check_url, {"identity_confirmed": "on"})
    assert checked.status_code == 200  # the form again, with the console's refusal
    text = html.unescape(checked.content.decode())
    assert "is being delivered by TDD_7 from the worklist" in text
    assert "the console cannot check or record it" in text
    assert not SetupClearance.objects.exists()
    beam = clinic.plan.beams.get()
    recorded = client.post(record_url, {"identity_confirmed": "on", "without_check": "on",
                                        f"mu_{beam.pk}": "251", f"term_{beam.pk}": "NORMAL"})
    assert recorded.status_code == 200
    assert "is being delivered by TDD_7" in html.unescape(recorded.content.decode())
    assert not clinic.plan.sessions.exists()


def test_reads_take_the_same_queries_for_one_step_or_many(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                          therapist, clinic: Clinic) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    other = plan_approve(plan=receive_plan(fractions=1, patient_id="VMAT02", label="PELV"),
                         user=physicist, password=PASSWORD)
    appointments_schedule(plan=other, machine=clinic.machine, start=timezone.localdate(),
                          user=therapist, weekdays=tuple(range(7)))
    claim(clinic.step(1), ae="TDD_1")
    W.objects.filter(plan=other).update(progress_percent=10.0, progress_beam=2)
    W.objects.filter(pk=clinic.step(2).pk).update(progress_beam=1)  # each day: beam names
    client.force_login(physicist)
    url = f"/machines/{clinic.machine.pk}/worklist/"

    def queries(url: str, needle: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert needle in page(client, url)
        return len(captured)

    today = queries(url, "PELV")  # two steps
    tomorrow = queries(f"{url}?date={clinic.appointments[1].date:%Y-%m-%d}", "VMAT")  # one
    assert today == tomorrow
    client_api = api(physicist)
    with CaptureQueriesContext(connection) as one:
        assert len(ids(client_api.get("/api/v1/workitems/?limit=1"))) == 1
    with CaptureQueriesContext(connection) as four:
        assert len(ids(client_api.get("/api/v1/workitems/?limit=10"))) == 4
    assert len(one) == len(four)
