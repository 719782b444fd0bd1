"""One permission door (issue 11 item 6): every clinical read and write asks rv.roles; a
superuser is an IT account with no clinical right; a user with no role sees no patient
data anywhere; a refused e-signature is audited and says the same thing whatever was
wrong. The URL checks are built from the URLconf, so a new URL without the check fails."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from rv import errors
from rv.models import AuditEvent, Plan, Session, ToleranceTable, TreatmentMachine
from rv.roles import MESSAGES, PHYSICIST, THERAPIST, Action
from rv.services import plans as plan_services
from rv.services import tolerance as tolerance_services
from rv.services.esign import REFUSED
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan
from tests.rv.treat import BeamInput, OverrideInput, session_record

# --- every URL of the URLconf ------------------------------------------------------------

# Open to anyone (log in, get a token, the schema) or to any logged-in user (the API's list
# of endpoints). Everything else must refuse a user with no role.
OPEN = {"login", "logout", "api-token", "api-schema", "api-docs", "api-root",
        "api-logout", "api-logout-all"}  # revoking one's own token needs no role
# What a bare superuser may reach: its IT work (users, DICOM nodes) and the home page,
# which sends it there.
SUPERUSER_MAY = {"home", "rv-users", "node-list", "node-detail",
                 "commitment-list", "commitment-detail"}  # Storage Commitment: DICOM plumbing
SAMPLE = {"pk": "1", "machine": "TrueBeam1", "action": "approve", "format": "json",
          "photo_pk": "1"}


def _leaves(patterns: list[Any], groups: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[
        str, ...]]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.namespace == "admin":
                continue  # the admin site: test_admin_site_*
            yield from _leaves(p.url_patterns, groups + tuple(p.pattern.regex.groupindex))
        elif isinstance(p, URLPattern):
            assert p.name, f"unnamed URL {p.pattern}: name it so this test can reach it"
            yield p.name, groups + tuple(p.pattern.regex.groupindex)


def _urls() -> list[tuple[str, str]]:
    out = []
    for name, groups in _leaves(get_resolver().url_patterns):
        url = reverse(name, kwargs={g: SAMPLE[g] for g in groups})
        out.append((name, url))
    return sorted(set(out))


URLS = _urls()
CHECKED = [(name, url) for name, url in URLS if name not in OPEN]


def test_the_urlconf_is_walked_whole() -> None:
    names = {name for name, _ in URLS}
    assert {"rv-patients", "rv-plan-action", "rv-session", "rv-instance-png", "patient-list",
            "plan-approve", "session-list", "record-detail", "export-retry",
            "rv-history-patient", "archive-study"} <= names
    assert len(CHECKED) > 60


def _get_and_post(user: User, url: str) -> list[Any]:
    if url.startswith("/api/"):
        api = APIClient()
        api.force_authenticate(user)
        return [api.get(url), api.post(url, {}, format="json")]
    client = Client()
    client.force_login(user)
    return [client.get(url), client.post(url, {})]


def _refused(response: Any, url: str) -> bool:
    if response.status_code != 403:
        return False
    if url.startswith("/api/"):
        return response.json()["message"] in MESSAGES.values()  # the door's, not CSRF's
    return b"No access" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), CHECKED, ids=[u for _, u in CHECKED])
def test_a_user_with_no_role_is_refused_everywhere(name: str, url: str) -> None:
    nobody = User.objects.create_user("nobody", password=PASSWORD)
    for response in _get_and_post(nobody, url):
        assert _refused(response, url), (response.status_code, response.content[:300])


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), CHECKED, ids=[u for _, u in CHECKED])
def test_a_superuser_without_a_role_reads_no_clinical_page(name: str, url: str) -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    for response in _get_and_post(root, url):
        if name in SUPERUSER_MAY:
            assert response.status_code != 403
        else:
            assert _refused(response, url), (response.status_code, response.content[:300])


@pytest.mark.django_db
def test_nothing_is_listed_for_a_user_with_no_role(client: Client) -> None:
    receive_plan(patient_id="SECRET1")
    client.force_login(User.objects.create_user("nobody", password=PASSWORD))
    home = client.get("/")
    assert home.status_code == 403 and b"No access" in home.content
    page = home.content.decode()
    for link in ("/patients/", "/console/", "/archive/patients/", "/history/", "/audit/",
                 "/tolerance-tables/", "/device-records/"):
        assert f'href="{link}"' not in page
    api = APIClient()
    api.force_authenticate(User.objects.get(username="nobody"))
    for url in ("/api/v1/patients/", "/api/v1/plans/", "/api/v1/sessions/",
                "/api/v1/records/", "/api/v1/history/"):
        got = api.get(url, {"patient_id": "SECRET1"})
        assert got.status_code == 403 and b"SECRET1" not in got.content


@pytest.mark.django_db
def test_a_clinical_role_still_reads(client: Client, therapist: User) -> None:
    plan = receive_plan(patient_id="SEEN1")
    client.force_login(therapist)
    assert client.get("/").status_code == 302  # to the console
    assert b"SEEN1" in client.get("/patients/").content
    assert client.get(f"/plans/{plan.pk}/").status_code == 200
    api = APIClient()
    api.force_authenticate(therapist)
    assert api.get("/api/v1/patients/").json()["results"][0]["patient_id"] == "SEEN1"


def test_an_api_view_that_declares_no_action_is_refused() -> None:
    from rest_framework.test import APIRequestFactory, force_authenticate
    from rest_framework.views import APIView

    from rv.api.access import UNDECLARED

    class Forgot(APIView):
        def get(self, request: Any) -> Any:  # pragma: no cover - never reached
            raise AssertionError

    request = APIRequestFactory().get("/x/")
    force_authenticate(request, user=User(username="u", is_superuser=True))
    response = Forgot.as_view()(request)
    assert response.status_code == 403 and response.data["message"] == UNDECLARED


# --- a superuser is an IT account ---------------------------------------------------------


def _root() -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


def _approved(plan: Plan) -> Plan:
    return plan_services.plan_approve(plan=plan, user=make_user("signer", PHYSICIST),
                                      password=PASSWORD)


def _superuser_attempts() -> dict[str, tuple[Action, Callable[[User], Callable[[], object]]]]:
    def approve(root: User) -> Callable[[], object]:
        plan = receive_plan()
        return lambda: plan_services.plan_approve(plan=plan, user=root, password=PASSWORD)

    def hold(root: User) -> Callable[[], object]:
        plan = _approved(receive_plan())
        return lambda: plan_services.plan_hold(plan=plan, user=root, reason="r")

    def retire(root: User) -> Callable[[], object]:
        plan = receive_plan()
        return lambda: plan_services.plan_retire(plan=plan, user=root, reason="r")

    def move(root: User) -> Callable[[], object]:
        plan = receive_plan()
        course = plan_services.course_create(patient=plan.patient,
                                             user=make_user("phys", PHYSICIST))
        return lambda: plan_services.plan_move_to_course(plan=plan, user=root, course=course)

    def tolerance_create(root: User) -> Callable[[], object]:
        machine = TreatmentMachine.objects.create(name="M1")
        return lambda: tolerance_services.tolerance_table_create(
            user=root, machine=machine, label="T", values={"gantry_angle": 1.0})

    def tolerance_update(root: User) -> Callable[[], object]:
        machine = TreatmentMachine.objects.create(name="M1")
        table = tolerance_services.tolerance_table_create(
            user=make_user("phys", PHYSICIST), machine=machine, label="T",
            values={"gantry_angle": 1.0})
        return lambda: tolerance_services.tolerance_table_update(
            table=table, user=root, values={"gantry_angle": 5.0})

    return {"approve": (Action.PLAN_APPROVE, approve), "hold": (Action.PLAN_HOLD, hold),
            "retire": (Action.PLAN_RETIRE, retire), "move": (Action.PLAN_MOVE, move),
            "tolerance-create": (Action.TOLERANCE_EDIT, tolerance_create),
            "tolerance-update": (Action.TOLERANCE_EDIT, tolerance_update)}


ATTEMPTS = _superuser_attempts()


@pytest.mark.django_db
@pytest.mark.parametrize("what", list(ATTEMPTS))
def test_a_superuser_cannot_act_clinically_in_the_services(what: str) -> None:
    action, make = ATTEMPTS[what]
    root = _root()
    attempt = make(root)
    before = (list(Plan.objects.values_list("pk", "status", "course_id")),
              list(ToleranceTable.objects.values_list("pk", "gantry_angle", "version")))
    with pytest.raises(errors.PermissionDenied) as refused:
        attempt()
    assert refused.value.message == MESSAGES[action]
    assert before == (list(Plan.objects.values_list("pk", "status", "course_id")),
                      list(ToleranceTable.objects.values_list("pk", "gantry_angle", "version")))
    root.groups.add(Group.objects.get(name=PHYSICIST))  # the role, not the flag, decides
    assert attempt() is not None


@pytest.mark.django_db
def test_a_superuser_cannot_act_clinically_on_the_web_or_the_api(client: Client) -> None:
    root = _root()
    plan = receive_plan()
    client.force_login(root)
    for action in ("approve", "hold", "retire", "move", "new-course", "course-status"):
        got = client.post(f"/plans/{plan.pk}/{action}/", {"password": PASSWORD,
                                                           "reason": "r"})
        assert got.status_code == 403 and b"No access" in got.content
    machine = machine_of(plan)
    got = client.post("/tolerance-tables/", {"machine": machine.pk, "label": "T"})
    assert got.status_code == 403 and not ToleranceTable.objects.filter(label="T").exists()
    api = APIClient()
    api.force_authenticate(root)
    for action in ("approve", "hold", "retire", "complete", "release-hold"):
        got = api.post(f"/api/v1/plans/{plan.pk}/{action}/", {"password": PASSWORD},
                       format="json")
        assert got.status_code == 403 and got.json()["message"] == MESSAGES[
            Action.CLINICAL_READ]
    plan.refresh_from_db()
    assert plan.status == "RECEIVED" and plan.approved_by is None
    assert not AuditEvent.objects.filter(action__startswith="plan.").exclude(
        action="plan.import").exists()


@pytest.mark.django_db
def test_admin_site_shows_a_superuser_no_patient_data(client: Client) -> None:
    receive_plan(patient_id="SECRET2")
    root = _root()
    client.force_login(root)
    for url in ("/admin/rv/patient/", "/admin/rv/plan/", "/admin/rv/session/",
                "/admin/rv/course/", "/admin/rv/appointment/", "/admin/rv/auditevent/",
                "/admin/archive/patient/", "/admin/archive/study/", "/admin/archive/instance/",
                "/admin/rv/tolerancetable/", "/admin/rv/treatmentmachine/",
                "/admin/dicom_net/exportjob/"):
        assert client.get(url).status_code == 403, url
    index = client.get("/admin/").content.decode()
    assert "SECRET2" not in index and "/admin/rv/patient/" not in index
    assert client.get("/admin/auth/user/").status_code == 200  # its IT work
    assert client.get("/admin/dicom_net/node/").status_code == 200
    root.groups.add(Group.objects.get(name=PHYSICIST))
    assert b"SECRET2" in client.get("/admin/rv/patient/").content


@pytest.mark.django_db
def test_the_demo_admin_is_an_it_account_with_the_admin_role(settings, tmp_path,
                                                             client: Client) -> None:
    settings.BASE_DIR = tmp_path
    call_command("demo_setup", stdout=io.StringIO(), stderr=io.StringIO())
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and list(admin.groups.values_list("name", flat=True)) == [
        "admin"]
    client.force_login(admin)
    assert client.get("/")["Location"] == "/audit/"
    assert client.get("/history/").status_code == 200  # the admin role reads history
    plan = Plan.objects.get()
    for url in ("/patients/", f"/plans/{plan.pk}/", "/console/"):
        assert client.get(url).status_code == 403, url
    with pytest.raises(errors.PermissionDenied):
        plan_services.plan_approve(plan=plan, user=admin, password=PASSWORD)


# --- e-signatures -------------------------------------------------------------------------


def _groups() -> None:
    # transactional tests flush the groups the migration made; put them back
    for name in ("therapist", "physicist", "physician", "admin"):
        Group.objects.get_or_create(name=name)


@pytest.mark.django_db(transaction=True)
def test_a_failed_approval_signature_is_audited_and_outlives_the_rollback() -> None:
    _groups()
    plan = receive_plan()
    physicist = make_user("phoebe", PHYSICIST)
    with pytest.raises(errors.PermissionDenied) as refused:
        plan_services.plan_approve(plan=plan, user=physicist, password="not it")
    assert refused.value.message == REFUSED
    plan.refresh_from_db()
    assert plan.status == "RECEIVED" and plan.approved_by is None
    event = AuditEvent.objects.get(action="esign.refused")  # committed: no test transaction
    assert (event.user, event.object_type, event.object_id) == (physicist, "rv.plan",
                                                                str(plan.pk))
    assert event.details == {"action": "approve", "signer": "phoebe",
                             "cause": "wrong password"}
    assert not AuditEvent.objects.filter(action="plan.approve").exists()


@pytest.mark.django_db
def test_a_failed_approval_signature_through_the_web_and_api(client: Client,
                                                             physicist: User) -> None:
    plan = receive_plan()
    client.force_login(physicist)
    page = client.post(f"/plans/{plan.pk}/approve/", {"password": "nope"}, follow=True)
    assert REFUSED in page.content.decode()
    api = APIClient()
    api.force_authenticate(physicist)
    got = api.post(f"/api/v1/plans/{plan.pk}/approve/", {"password": ""}, format="json")
    assert got.status_code == 403 and got.json()["message"] == REFUSED
    assert AuditEvent.objects.filter(action="esign.refused").count() == 2
    plan.refresh_from_db()
    assert plan.status == "RECEIVED"


NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_override_refusals_say_the_same_whatever_was_wrong() -> None:
    _groups()
    signer = make_user("phoebe", PHYSICIST)
    plan = plan_services.plan_approve(plan=receive_plan(), user=signer, password=PASSWORD)
    rtt = make_user("theo", THERAPIST)
    other_rtt = make_user("tom", THERAPIST)
    both = make_user("tess", THERAPIST)
    both.groups.add(Group.objects.get(name=PHYSICIST))
    inactive = make_user("gone", PHYSICIST)
    inactive.is_active = False
    inactive.save()
    beams = [BeamInput(beam=plan.beams.get(), delivered_meterset=251.0, gantry_angle=90.0)]
    with pytest.raises(errors.VerificationFailed) as blocked:
        session_record(plan=plan, machine=machine_of(plan), beams=beams, recorded_by=rtt,
                       identity_confirmed=True, now=NOW)
    keys = tuple(x.key() for x in blocked.value.violations)
    cases = {  # (recorded by, signer, password) -> the cause the audit trail keeps
        (rtt, "phoebe", "wrong"): "wrong password",
        (rtt, "tom", PASSWORD): "role may not sign this",
        (rtt, "nobody-here", PASSWORD): "unknown user",
        (rtt, "gone", PASSWORD): "inactive user",
        (both, "tess", PASSWORD): "signer is the user whose work is signed",
    }
    messages = set()
    for (recorder, name, password), cause in cases.items():
        with pytest.raises(errors.PermissionDenied) as refused:
            session_record(plan=plan, machine=machine_of(plan), beams=beams,
                           recorded_by=recorder, identity_confirmed=True, now=NOW,
                           override=OverrideInput(username=name, password=password,
                                                  reason="r", violation_keys=keys))
        messages.add(refused.value.message)
        event = AuditEvent.objects.filter(action="esign.refused").latest("id")
        assert (event.details["cause"], event.details["signer"], event.user) == (
            cause, name, recorder)
    assert messages == {REFUSED}
    assert AuditEvent.objects.filter(action="esign.refused").count() == len(cases)
    assert AuditEvent.objects.filter(action="override.refused").count() == len(cases)
    assert not Session.objects.exists() and other_rtt.pk


@pytest.mark.django_db
def test_override_refusal_through_the_api_is_the_same_for_password_role_and_name(
        physicist: User, therapist: User) -> None:
    plan = _approved(receive_plan())
    make_user("tom", THERAPIST)
    api = APIClient()
    api.force_authenticate(therapist)
    body = {"plan": plan.pk, "machine": machine_of(plan).name, "identity_confirmed": True,
            "beams": [{"beam": 1, "gantry_angle": 90.0}]}
    blocked = api.post("/api/v1/setup-checks/", body, format="json")
    assert blocked.status_code == 422
    keys = [v["key"] for v in blocked.json()["violations"]]
    answers = []
    for name, password in ((physicist.username, "wrong"), ("tom", PASSWORD),
                           ("no-such-user", PASSWORD)):
        got = api.post("/api/v1/setup-checks/", {**body, "override": {
            "username": name, "password": password, "reason": "r",
            "violation_keys": keys}}, format="json")
        answers.append((got.status_code, got.json()["message"]))
    assert answers == [(403, REFUSED)] * 3
    assert not Session.objects.exists()
