"""Every 500 of issue 12 is a 4xx with a JSON message now, and a 500 that still happens is
logged with its traceback on stderr, DEBUG or not. Each case was a 500 before."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from knox.models import AuthToken

from rv.models import AuditEvent, Plan, TreatmentMachine
from rv.roles import PHYSICIST, THERAPIST
from tests.rv.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"


@pytest.fixture
def clinic() -> None:
    call_command("seed_clinic", patients=2, machines=1, years=1, seed=5, verbosity=0)


@pytest.fixture
def api() -> Client:
    """A test client whose requests carry a physicist's token; 500s answer, not raise."""
    client = Client(raise_request_exception=False)
    token = AuthToken.objects.create(user=make_user("phys", PHYSICIST))[1]
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client


def _json_4xx(response) -> str:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    return str(response.json()["message"])


@pytest.mark.parametrize("body", ["false", "[]", "[null,null]", "null", '"x"', "1"])
def test_non_object_json_bodies_are_400(clinic, api: Client, body: str) -> None:  # type: ignore[no-untyped-def]
    plan = Plan.objects.filter(status=Plan.Status.RECEIVED).first() or Plan.objects.first()
    assert plan is not None
    for url in (f"/api/v1/plans/{plan.pk}/hold/", f"/api/v1/plans/{plan.pk}/approve/",
                f"/api/v1/plans/{plan.pk}/retire/", "/api/v1/sessions/",
                "/api/v1/appointments/schedule/", "/api/v1/auth/token/"):
        got = api.post(url, body, content_type="application/json")
        assert got.status_code == 400 and "message" in got.json(), (url, got.content[:200])


def test_nul_in_a_reason_is_400_and_changes_nothing(clinic, api: Client) -> None:  # type: ignore[no-untyped-def]
    first = Plan.objects.first()
    assert first is not None
    Plan.objects.filter(pk=first.pk).update(status=Plan.Status.APPROVED)
    plan = Plan.objects.get(pk=first.pk)  # one that could be put on hold
    plans = AuditEvent.objects.exclude(action__startswith="auth.")
    before, events = plan.status, plans.count()
    got = api.post(f"/api/v1/plans/{plan.pk}/hold/", '{"reason": "a\\u0000b"}',
                   content_type="application/json")
    assert "NUL" in _json_4xx(got)
    web = Client(raise_request_exception=False)
    web.login(username="phys", password=PASSWORD)
    form = web.post(f"/plans/{plan.pk}/hold/", {"reason": "a\x00b"})
    assert "NUL" in _json_4xx(form)
    plan.refresh_from_db()
    assert plan.status == before and plans.count() == events


@pytest.mark.parametrize("query", [f"limit={HUGE}", f"offset={HUGE}", "limit=-5",
                                   "offset=-1"])
def test_huge_limits_are_not_500(clinic, api: Client, query: str) -> None:  # type: ignore[no-untyped-def]
    for url in ("/api/v1/patients/", "/api/v1/plans/", "/api/v1/courses/"):
        got = api.get(f"{url}?{query}")
        assert got.status_code == 200, (url, query, got.content[:200])
        assert len(got.json()["results"]) <= 1000


def test_capped_limit_still_pages(clinic, api: Client) -> None:  # type: ignore[no-untyped-def]
    got = api.get(f"/api/v1/patients/?limit={HUGE}").json()
    assert got["count"] == len(got["results"]) == 2


@pytest.mark.parametrize("url", ["/api/v1/patients/?q=%00", "/api/v1/plans/?ordering=%00",
                                 "/api/v1/history/?machine=%00", "/patients/?q=%00",
                                 "/history/?q=%00", "/console/%00/"])
def test_nul_in_queries_and_paths_is_400(clinic, api: Client, url: str) -> None:  # type: ignore[no-untyped-def]
    make_user("ther", THERAPIST)
    api.login(username="phys", password=PASSWORD)
    assert "NUL" in _json_4xx(api.get(url))


@pytest.mark.parametrize("url", [f"/api/v1/plans/{HUGE}/", f"/api/v1/patients/{HUGE}/",
                                 f"/api/v1/sessions/{HUGE}/", f"/plans/{HUGE}/",
                                 f"/patients/{HUGE}/", f"/api/v1/plans/?course={HUGE}"])
def test_out_of_range_ids_are_4xx(clinic, api: Client, url: str) -> None:  # type: ignore[no-untyped-def]
    api.login(username="phys", password=PASSWORD)
    got = api.get(url)
    assert got.status_code in (400, 404), (url, got.status_code, got.content[:200])


def test_machine_name_with_a_slash_keeps_the_console_working(clinic) -> None:  # type: ignore[no-untyped-def]
    machine = TreatmentMachine.objects.first()
    assert machine is not None
    machine.name = "LIN/AC 1%"
    machine.save(update_fields=["name"])
    make_user("ther", THERAPIST)
    client = Client(raise_request_exception=False)
    client.login(username="ther", password=PASSWORD)
    listing = client.get("/console/")
    assert listing.status_code == 200
    link = "/console/LIN%252FAC%25201%2525/"
    assert link in listing.content.decode()
    # The browser sends the link as written; the test client decodes it once, as WSGI does.
    day = client.get(link)
    assert day.status_code == 200 and "LIN/AC 1%" in day.content.decode()


def test_a_500_is_logged_with_its_traceback_on_stderr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In a process of its own with DEBUG off, as the service runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import django; django.setup()\n"
            "from django.test import Client, override_settings\n"
            "with override_settings(ROOT_URLCONF='tests.security.urls_boom'):\n"
            "    client = Client(raise_request_exception=False, HTTP_HOST='localhost')\n"
            "    print(client.get('/boom/').status_code)\n")
    env = {**os.environ, "DJANGO_DEBUG": "false", "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path}/boom.sqlite3"}
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "500", done.stderr
    assert "ERROR django.request: Internal Server Error: /boom/" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "RuntimeError: boom-for-the-log" in done.stderr
