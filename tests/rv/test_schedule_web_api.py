"""The timed schedule on the web and in the API: the day list (order, flags, a bounded
number of queries), the week view, the machine's hours page, back to the day list after
recording, and /api/v1/appointments/ (filters, move, swap, add-missed, book, refusals with
the next free slot)."""

from __future__ import annotations

import re
from datetime import date, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from rv.ingest import object_receive
from rv.models import Appointment, MachineHours, Plan, TreatmentMachine
from rv.schedule_rules import DayHours
from rv.services.plans import plan_approve
from rv.services.schedule import (
    appointment_book,
    appointments_schedule,
    machine_hours_set,
)
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10
from tests.rv.records import rt_image
from tests.rv.treat import BeamInput, record_only, session_record

pytestmark = pytest.mark.django_db
ALL_DAYS = tuple(range(7))


def _approved(physicist: User, patient_id: str, fractions: int = 5) -> Plan:
    return plan_approve(plan=receive_plan(patient_id=patient_id, fractions=fractions),
                        user=physicist, password=PASSWORD)


def _today_at(plan: Plan, user: User, at: time | None) -> Appointment:
    return appointments_schedule(plan=plan, machine=machine_of(plan), user=user, count=1,
                                 start=timezone.localdate(), weekdays=ALL_DAYS, at=at)[0]


def _row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr id="a(\d+)"', html)]


def _row(html: str, a: Appointment) -> str:
    start = html.index(f'<tr id="a{a.pk}"')
    return html[start:html.index("</tr>", start)]


def _treated_days_ago(plan: Plan, user: User, days: int, *, checked: bool = True) -> None:
    """Fraction 1 delivered `days` ago (set-up checked, or recorded without a check:
    NOT_VERIFIED)."""
    when = timezone.now() - timedelta(days=days)
    beams = [BeamInput(plan.beams.get(), 251.0)]
    machine = machine_of(plan)
    if checked:
        session_record(plan=plan, machine=machine, recorded_by=user, beams=beams, now=when)
    else:
        record_only(plan=plan, machine=machine, recorded_by=user, beams=beams, now=when)


def test_the_day_list_is_in_time_order_with_its_flags(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                      therapist) -> None:
    new = _approved(physicist, "DAY01")
    late = _approved(physicist, "DAY02")
    flagged = _approved(physicist, "DAY03")
    imaged = _approved(physicist, "DAY04")
    _treated_days_ago(late, therapist, 7)  # fraction 2 was due 6 days ago (every day)
    _treated_days_ago(flagged, therapist, 1, checked=False)  # NOT_VERIFIED, unreviewed
    object_receive(data=part10(rt_image(plan=flagged)), calling_ae="EPID")  # to review
    a_new = _today_at(new, therapist, time(9))
    a_late = _today_at(late, therapist, time(8))
    a_flagged = _today_at(flagged, therapist, None)  # untimed: last
    a_imaged = _today_at(imaged, therapist, time(9))  # same time, made later: after
    imaging = appointment_book(plan=imaged, machine=machine_of(imaged), user=therapist,
                               day=timezone.localdate(), at=time(8, 30), activity="IMAGING",
                               note="CBCT")
    client.force_login(therapist)
    html = client.get("/console/TrueBeam1/").content.decode()
    assert _row_ids(html) == [a_late.pk, imaging.pk, a_new.pk, a_imaged.pk, a_flagged.pk]
    row = _row(html, a_late)
    assert "08:00" in row and "2 of 5" in row and "Break: 6 days" in row
    assert "New start" not in row
    assert "New start" in _row(html, a_new) and "Break" not in _row(html, a_new)
    row = _row(html, a_flagged)
    assert "NOT_VERIFIED to review" in row and "Images to review" in row
    assert "—" in row  # no time
    assert "Imaging today" in _row(html, a_imaged)
    row = _row(html, imaging)
    assert "imaging" in row and "CBCT" in row and "Check set-up" not in row
    assert "Check set-up for fraction 2" in _row(html, a_late)
    assert client.get(f"/console/TrueBeam1/appointments/{imaging.pk}/check/").status_code \
        == 404
    assert 'id="swap"' in html  # a therapist may swap


def _clinic_day(physicist: User, therapist: User, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        plan = _approved(physicist, f"Q{i:03d}")
        _today_at(plan, therapist, time(7 + i // 4 % 12, (i % 4) * 15))


def test_the_day_list_of_40_patients_makes_a_bounded_number_of_queries(  # type: ignore[no-untyped-def]
        client: Client, physicist, therapist, django_assert_max_num_queries) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _clinic_day(physicist, therapist, 5)
    client.force_login(therapist)
    with CaptureQueriesContext(connection) as five:
        assert client.get("/console/TrueBeam1/").status_code == 200
    _clinic_day(physicist, therapist, 35, start=5)
    with django_assert_max_num_queries(20):
        html = client.get("/console/TrueBeam1/").content.decode()
    assert len(_row_ids(html)) == 40
    with CaptureQueriesContext(connection) as forty:
        client.get("/console/TrueBeam1/")
    assert len(forty) == len(five)  # not one more per row


def test_after_recording_the_console_returns_to_the_day_list(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                             therapist) -> None:
    first = _today_at(_approved(physicist, "BACK01"), therapist, time(8))
    second = _today_at(_approved(physicist, "BACK02"), therapist, time(8, 15))
    client.force_login(therapist)
    beam = first.plan.beams.get()
    assert client.post(f"/console/TrueBeam1/appointments/{first.pk}/check/",
                       {"identity_confirmed": "on"}).status_code == 302
    done = client.post(f"/console/TrueBeam1/appointments/{first.pk}/record/", {
        "identity_confirmed": "on", f"mu_{beam.pk}": "251", f"term_{beam.pk}": "NORMAL"})
    assert done.status_code == 302
    assert done["Location"] == (f"/console/TrueBeam1/?date={timezone.localdate():%Y-%m-%d}"
                                f"#a{first.pk}")
    html = client.get(done["Location"]).content.decode()
    assert "Fraction 1 of VMAT recorded: verified." in html
    assert _row_ids(html) == [first.pk, second.pk]
    assert "delivered" in _row(html, first) and "Check set-up" not in _row(html, first)
    assert "Check set-up for fraction 1" in _row(html, second)


def test_the_week_view_shows_seven_days_by_time(client: Client, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist, "WEEK01")
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist, start=monday,
                          weekdays=(0, 2), count=2, at=time(10, 30))
    appointment_book(plan=plan, machine=machine_of(plan), user=therapist, day=monday,
                     at=time(8), activity="REVIEW_VISIT")
    client.force_login(therapist)
    html = client.get(f"/console/TrueBeam1/week/?date={today:%Y-%m-%d}").content.decode()
    heads = re.findall(r'<th><a href="/console/TrueBeam1/\?date=([\d-]+)">', html)
    assert heads == [f"{monday + timedelta(days=i):%Y-%m-%d}" for i in range(7)]
    cells = html.split("<tbody>")[1].split("<td>")[1:]
    assert cells[0].index("08:00") < cells[0].index("10:30")
    assert "review visit" in cells[0] and "fx 1 of 5" in cells[0]
    assert "fx 2 of 5" in cells[2] and "Test^WEEK01" not in cells[1]
    assert "No opening hours are set" in html


def test_a_physicist_sets_the_hours_on_the_machine_page(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                        therapist) -> None:
    plan = _approved(physicist, "HRS01")
    m = machine_of(plan)
    client.force_login(physicist)
    form = {"opens_0": "07:30", "closes_0": "18:00", "slot_0": "12", "capacity_0": "1",
            "opens_5": "", "closes_5": ""}
    assert client.post(f"/machines/{m.pk}/hours/", form).status_code == 302
    hours = MachineHours.objects.filter(machine=m)
    assert list(hours.values_list("weekday", "slot_minutes")) == [(0, 12)]
    bad = client.post(f"/machines/{m.pk}/hours/", {"opens_1": "09:00"}, follow=True)
    assert "give both the opening and closing time" in bad.content.decode()
    client.force_login(therapist)
    page = client.get(f"/machines/{m.pk}/hours/").content.decode()
    assert 'value="07:30"' in page and "disabled" in page and "Save hours" not in page
    refused = client.post(f"/machines/{m.pk}/hours/", {**form, "slot_0": "30"})
    assert refused.status_code == 200 and 'class="error"' in refused.content.decode()
    hours = MachineHours.objects.filter(machine=m)
    assert list(hours.values_list("weekday", "slot_minutes")) == [(0, 12)]


def test_the_plan_page_schedules_at_a_time_and_shows_a_break(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                            therapist) -> None:
    plan = _approved(physicist, "PLN01", fractions=3)
    _treated_days_ago(plan, therapist, 3)
    client.force_login(therapist)
    m = machine_of(plan)
    today = timezone.localdate()
    client.post(f"/plans/{plan.pk}/schedule/", {
        "machine": m.pk, "start": f"{today:%Y-%m-%d}", "time": "13:45", "duration": "20",
        **{"weekday": [str(d) for d in ALL_DAYS]}})
    made = list(Appointment.objects.filter(plan=plan).order_by("date"))
    assert [(a.fraction_number, a.time, a.duration_minutes) for a in made] == [
        (2, time(13, 45), 20), (3, time(13, 45), 20)]
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "2 days behind" in page  # fraction 2 was due the day after fraction 1
    missed = client.post(f"/appointments/{made[0].pk}/missed/", {"reason": "flu"},
                         follow=True).content.decode()
    assert "a fraction is added at the end" in missed
    assert Appointment.objects.get(pk=made[0].pk).status == "MISSED"
    booked = client.post(f"/plans/{plan.pk}/book/", {
        "activity": "PHYSICS_CHECK", "machine": m.pk, "date": f"{today:%Y-%m-%d}",
        "time": "18:00"}, follow=True).content.decode()
    assert "Physics check booked on TrueBeam1" in booked


# --- the API --------------------------------------------------------------------------------

@pytest.fixture
def api(therapist) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(therapist)
    return client


def _hours(machine: TreatmentMachine, physicist: User) -> None:
    machine_hours_set(machine=machine, user=physicist, hours={
        d: DayHours(time(8), time(12), 15, 1) for d in ALL_DAYS})


def test_api_lists_a_machines_day_with_time_duration_and_activity(api, physicist,  # type: ignore[no-untyped-def]
                                                                  therapist) -> None:
    one, two = _approved(physicist, "API01"), _approved(physicist, "API02")
    _today_at(one, therapist, time(10))
    _today_at(two, therapist, time(9))
    appointment_book(plan=one, machine=machine_of(one), user=therapist,
                     day=timezone.localdate(), at=time(9, 30), activity="IMAGING")
    today = f"{timezone.localdate():%Y-%m-%d}"
    got = api.get("/api/v1/appointments/", {"machine": "TrueBeam1", "date": today}).json()
    rows = got["results"] if isinstance(got, dict) else got
    assert [(r["time"], r["activity"], r["fraction_number"], r["duration_minutes"])
            for r in rows] == [("09:00:00", "TREATMENT", 1, 15), ("09:30:00", "IMAGING", None, 15),
                               ("10:00:00", "TREATMENT", 1, 15)]
    got = api.get("/api/v1/appointments/", {"activity": "IMAGING"}).json()
    rows = got["results"] if isinstance(got, dict) else got
    assert len(rows) == 1
    got = api.get("/api/v1/appointments/", {"machine": "Nowhere"}).json()
    assert (got["results"] if isinstance(got, dict) else got) == []
    assert api.get("/api/v1/appointments/", {"date_from": "nonsense"}).status_code == 400


def test_api_schedule_refused_outside_hours_names_the_next_free_slot(api, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist, "API03")
    _hours(machine_of(plan), physicist)
    monday = date(2031, 3, 3)
    got = api.post("/api/v1/appointments/schedule/", {
        "plan": plan.pk, "machine": "TrueBeam1", "start": f"{monday}", "time": "12:00",
        "count": 2}, format="json")
    assert got.status_code == 409
    assert "outside TrueBeam1's hours" in got.json()["message"]
    assert got.json()["next_free"] == "2031-03-04T08:00"
    got = api.post("/api/v1/appointments/schedule/", {
        "plan": plan.pk, "machine": "TrueBeam1", "start": f"{monday}", "count": 2,
        "duration": 30}, format="json")
    assert got.status_code == 201
    assert [(r["time"], r["duration_minutes"], r["pattern"]) for r in got.json()] == [
        ("08:00:00", 30, "01234"), ("08:00:00", 30, "01234")]


def test_api_move_swap_add_missed_and_book(api, physicist, therapist, physician) -> None:  # type: ignore[no-untyped-def]
    one, two = _approved(physicist, "API04"), _approved(physicist, "API05")
    machine = machine_of(one)
    _hours(machine, physicist)
    monday = date(2031, 3, 3)
    a1, a2 = appointments_schedule(plan=one, machine=machine, user=therapist, start=monday,
                                   count=2, at=time(8))
    b1 = appointments_schedule(plan=two, machine=machine, user=therapist, start=monday,
                               count=1, at=time(9))[0]
    moved = api.post(f"/api/v1/appointments/{a1.pk}/move/", {"date": f"{monday}",
                                                             "time": "10:15"}, format="json")
    assert moved.status_code == 200 and moved.json()["time"] == "10:15:00"
    refused = api.post(f"/api/v1/appointments/{a1.pk}/move/", {"date": f"{monday}",
                                                               "time": "09:00"}, format="json")
    assert refused.status_code == 409 and refused.json()["next_free"] == "2031-03-03T09:15"
    assert api.post(f"/api/v1/appointments/{a1.pk}/move/", {"date": "soon"},
                    format="json").status_code == 400
    swapped = api.post("/api/v1/appointments/swap/", {"first": a1.pk, "second": b1.pk},
                       format="json")
    assert swapped.status_code == 200
    assert [r["time"] for r in swapped.json()] == ["09:00:00", "10:15:00"]
    added = api.post(f"/api/v1/appointments/{a2.pk}/add-missed/", {"reason": "bus strike"},
                     format="json")
    assert added.status_code == 201
    assert (added.json()["date"], added.json()["time"]) == ("2031-03-05", "08:00:00")
    assert added.json()["fraction_number"] == 2
    assert Appointment.objects.get(pk=a2.pk).status == "MISSED"
    booked = api.post("/api/v1/appointments/book/", {
        "plan": one.pk, "machine": "TrueBeam1", "date": f"{monday}", "activity": "NEW_START",
        "note": "talk-through"}, format="json")
    assert booked.status_code == 201
    assert booked.json()["activity"] == "NEW_START" and booked.json()["time"] == "08:00:00"
    assert api.post("/api/v1/appointments/book/", {
        "plan": one.pk, "machine": "TrueBeam1", "date": f"{monday}", "activity": "TREATMENT"},
        format="json").status_code == 400
    api.force_authenticate(physician)
    assert api.post("/api/v1/appointments/swap/", {"first": a1.pk, "second": b1.pk},
                    format="json").status_code == 403


# --- the history page -----------------------------------------------------------------------

def test_history_page_has_human_labels_and_a_termination_column(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                                therapist) -> None:
    plan = _approved(physicist, "HIS01")
    beam = plan.beams.get()
    session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                   beams=[BeamInput(beam, 100.0, termination_status="OPERATOR")])
    client.force_login(physicist)
    html = client.get("/history/").content.decode()
    labels = re.findall(r"<label>([^<]+?) <", html)
    assert labels == ["Patient ID", "Name", "Machine", "From", "To", "Verification",
                      "Termination", "Therapist"]
    assert "Session plan" not in html and 'type="date"' in html
    assert "<th>Termination</th>" in html
    row = html.split("<tbody>")[1].split("</tr>")[0]
    assert "OPERATOR" in row and "100.0 / 251.0 MU" in row
    only = client.get("/history/", {"termination_status": "NORMAL"}).content.decode()
    assert "No delivered beam matches." in only
    by_record = client.get("/history/", {"patient": plan.patient_id}).content.decode()
    assert f'type="hidden" name="patient" value="{plan.patient_id}"' in by_record
    assert "Patient record" in by_record and "OPERATOR" in by_record
