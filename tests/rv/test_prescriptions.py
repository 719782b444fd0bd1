"""A physician's prescription (issue 15): written, signed and amended by a physician with
the password again (audited, refusals too); plan approval against it (fractions, dose per
fraction within the physicist's tolerance, modality, energy; boost and sequential plans
adding up), through the services, the API and the pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from rv.errors import PermissionDenied, ValidationError
from rv.models import AuditEvent, Plan, Prescription
from rv.services.esign import REFUSED
from rv.services.machines import machine_prescription_tolerance_set
from rv.services.plans import course_create, plan_approve
from rv.services.prescriptions import (
    ReferencePointInput,
    prescription_amend,
    prescription_create,
    prescription_plan_link,
    prescription_sign,
)
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.rx import prescribe, rx_input

pytestmark = pytest.mark.django_db
S = Prescription.Status


def _api(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- write, sign, amend ------------------------------------------------------------------

def test_a_physician_writes_signs_and_amends_audited(physician: User) -> None:
    plan = receive_plan(fractions=5)
    rx = prescription_create(course=plan.course, user=physician, data=rx_input(
        per=2.0, fractions=5, technique="VMAT", modality="PHOTON", energy=6.0,
        points=(ReferencePointInput("PTV", primary=True, session_limit=2.2, daily_limit=2.2),
                ReferencePointInput("Rectum", total_limit=7.0))))
    assert (rx.status, rx.version, rx.total_dose, rx.signed_by) == (S.DRAFT, 1, 10.0, None)
    assert rx.primary is not None and rx.primary.total_limit == 10.0  # the total dose
    signed = prescription_sign(prescription=rx, user=physician, password=PASSWORD)
    assert (signed.status, signed.signed_by) == (S.SIGNED, physician)
    assert signed.signed_at is not None
    amended = prescription_amend(prescription=signed, user=physician, password=PASSWORD,
                                 data=rx_input(per=1.8, fractions=5), reason="toxicity")
    assert (amended.version, amended.status, amended.previous_version_id) == (2, S.SIGNED,
                                                                               rx.pk)
    assert amended.amendment_reason == "toxicity" and amended.signed_by == physician
    signed.refresh_from_db()
    assert signed.status == S.SUPERSEDED  # kept, not changed otherwise
    assert (signed.dose_per_fraction, signed.references.count()) == (2.0, 2)
    assert [x.object_id for x in _events("prescription.create")] == [str(rx.pk)]
    assert _events("prescription.sign")[0].details["status"] == "SIGNED"
    amend = _events("prescription.amend")[0]
    assert amend.details["from"]["dose_per_fraction"] == 2.0
    assert amend.details["to"]["dose_per_fraction"] == 1.8
    assert amend.details["reason"] == "toxicity" and amend.user == physician
    with pytest.raises(ValidationError, match="amended since"):
        prescription_amend(prescription=signed, user=physician, password=PASSWORD,
                           data=rx_input(per=1.8, fractions=5), reason="again")


def test_signing_and_amending_need_the_password_and_refusals_are_audited(
        physician: User) -> None:
    course = receive_plan(fractions=5).course
    rx = prescribe(course, physician, sign=False)
    with pytest.raises(PermissionDenied) as refused:
        prescription_sign(prescription=rx, user=physician, password="wrong")
    assert refused.value.message == REFUSED
    rx.refresh_from_db()
    assert rx.status == S.DRAFT and rx.signed_by is None
    event = _events("esign.refused")[0]  # outlived the rollback
    assert event.details["cause"] == "wrong password" and event.details["action"] == "prescribe"
    assert event.object_id == str(rx.pk)
    prescription_sign(prescription=rx, user=physician, password=PASSWORD)
    with pytest.raises(PermissionDenied):
        prescription_amend(prescription=rx, user=physician, password="wrong",
                           data=rx_input(per=2.0), reason="r")
    assert len(_events("esign.refused")) == 2
    assert Prescription.objects.filter(course=course).count() == 1
    with pytest.raises(ValidationError, match="reason"):
        prescription_amend(prescription=rx, user=physician, password=PASSWORD,
                           data=rx_input(per=2.0), reason=" ")


def test_only_a_physician_prescribes(physicist: User, therapist: User) -> None:
    course = receive_plan(fractions=5).course
    for user in (physicist, therapist):
        with pytest.raises(PermissionDenied, match="Only a physician may prescribe"):
            prescription_create(course=course, user=user, data=rx_input())
    assert not Prescription.objects.exists()


@pytest.mark.parametrize(("changes", "words"), [
    ({"per": 2.0, "fractions": 5, "total_dose": 12.0}, "not the dose per fraction times"),
    ({"points": (ReferencePointInput("PTV"),)}, "exactly one reference point"),
    ({"points": (ReferencePointInput("PTV", primary=True), ReferencePointInput("ptv "))},
     "named twice"),
    ({"points": (ReferencePointInput("PTV", primary=True, session_limit=0.5),)},
     "would stop every treatment"),
    ({"per": float("nan")}, "dose per fraction"),
    ({"fractions": 0}, "number of fractions"),
    ({"site": " "}, "Name the treatment site"),
    ({"modality": "GAMMA"}, "Unknown modality"),
    ({"points": (ReferencePointInput("PTV", primary=True, total_limit=-1.0),)}, "above 0"),
])
def test_a_prescription_that_cannot_be_right_is_refused(physician: User, changes: dict,
                                                        words: str) -> None:
    course = receive_plan(fractions=5).course
    with pytest.raises(ValidationError, match=words):
        prescription_create(course=course, user=physician, data=rx_input(**changes))
    assert not Prescription.objects.exists()


def test_one_current_prescription_per_site(physician: User) -> None:
    course = receive_plan(fractions=5).course
    prescribe(course, physician, site="Prostate")
    with pytest.raises(ValidationError, match="amend it"):
        prescribe(course, physician, site=" prostate")
    prescribe(course, physician, site="Pelvic nodes")
    assert Prescription.objects.filter(course=course).count() == 2


# --- the approval check ------------------------------------------------------------------

def test_no_prescription_approves_as_before(physicist: User) -> None:
    plan = plan_approve(plan=receive_plan(fractions=5), user=physicist, password=PASSWORD)
    assert plan.status == Plan.Status.APPROVED
    assert "prescription" not in _events("plan.approve")[0].details


def test_approval_refused_on_mismatching_fractions_then_accepted_after_amendment(
        physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)
    rx = prescribe(plan.course, physician, per=1.0, fractions=6)
    with pytest.raises(ValidationError) as refused:
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    message = refused.value.message
    assert "the plan gives 5" in message and "prescribes 6" in message, message
    plan.refresh_from_db()
    assert plan.status == Plan.Status.RECEIVED
    assert _events("plan.approve_refused")[0].details["prescription"]["ok"] is False
    prescription_amend(prescription=rx, user=physician, password=PASSWORD,
                       data=rx_input(per=1.0, fractions=5), reason="5 fractions")
    approved = plan_approve(plan=plan, user=physicist, password=PASSWORD)
    assert approved.status == Plan.Status.APPROVED
    checked = _events("plan.approve")[0].details["prescription"]
    assert (checked["version"], checked["ok"]) == (2, True)


def test_approval_refused_on_dose_per_fraction_naming_both_values(
        physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, per=2.0, fractions=5)
    with pytest.raises(ValidationError) as refused:
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    message = refused.value.message
    assert "the plan gives 1 Gy" in message and "2 Gy" in message, message
    assert "50.00 %, outside the tolerance of 2 %" in message


def test_dose_per_fraction_within_the_tolerance_is_accepted(physicist: User,
                                                           physician: User) -> None:
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, per=1.015, fractions=5)  # 1.5 % from the plan's 1 Gy
    assert plan_approve(plan=plan, user=physicist, password=PASSWORD).status == "APPROVED"


def test_the_physicist_sets_the_tolerance_per_machine(physicist: User, physician: User,
                                                     settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_PRESCRIPTION_TOLERANCE_PERCENT = 2.0
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, per=1.04, fractions=5)  # 3.8 %
    with pytest.raises(ValidationError, match="outside the tolerance of 2 %"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    with pytest.raises(PermissionDenied):
        machine_prescription_tolerance_set(machine=machine_of(plan), user=physician,
                                           percent=5.0)
    machine_prescription_tolerance_set(machine=machine_of(plan), user=physicist, percent=5.0)
    assert _events("machine.prescription_tolerance")[0].details == {"from": None, "to": 5.0}
    assert plan_approve(plan=plan, user=physicist, password=PASSWORD).status == "APPROVED"


def test_a_draft_prescription_holds_approval(physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, sign=False)
    with pytest.raises(ValidationError, match="is a draft"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)


def test_modality_and_energy_where_prescribed(physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)  # 6 MV photons
    rx = prescribe(plan.course, physician, modality="ELECTRON")
    with pytest.raises(ValidationError, match="Modality: the plan's beams are PHOTON"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    rx = prescription_amend(prescription=rx, user=physician, password=PASSWORD,
                            data=rx_input(modality="PHOTON", energy=10.0), reason="photons")
    with pytest.raises(ValidationError, match="Nominal energy: the plan's beams 6"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    prescription_amend(prescription=rx, user=physician, password=PASSWORD,
                       data=rx_input(modality="PHOTON", energy=6.0), reason="6 MV")
    assert plan_approve(plan=plan, user=physicist, password=PASSWORD).status == "APPROVED"


def test_sequential_and_boost_plans_add_up_against_one_prescription(
        physicist: User, physician: User) -> None:
    main = receive_plan(label="Main", fractions=3)
    rx = prescribe(main.course, physician, per=1.0, fractions=5)
    with pytest.raises(ValidationError, match="prescribes 5"):  # 3 of 5: not linked as a part
        plan_approve(plan=main, user=physicist, password=PASSWORD)
    prescription_plan_link(prescription=rx, plan=main, user=physician, partial=True)
    plan_approve(plan=main, user=physicist, password=PASSWORD)
    boost = receive_plan(label="Boost", fractions=2)
    approved = plan_approve(plan=boost, user=physicist, password=PASSWORD)  # 3 + 2 = 5
    assert _events("plan.approve")[1].details["prescription"]["checks"][0]["message"].startswith(
        "Fractions: 3 of the prescription's earlier plans + 2 of this plan = 5")
    assert approved.status == "APPROVED"
    extra = receive_plan(label="Extra", fractions=1)
    prescription_plan_link(prescription=rx, plan=extra, user=physician, partial=True)
    with pytest.raises(ValidationError, match="= 6, more than the 5"):
        plan_approve(plan=extra, user=physicist, password=PASSWORD)


def test_a_revision_counts_once_and_keeps_its_link(physicist: User, physician: User) -> None:
    r1 = receive_plan(label="Main", fractions=3)
    rx = prescribe(r1.course, physician, per=1.0, fractions=5)
    prescription_plan_link(prescription=rx, plan=r1, user=physician, partial=True)
    plan_approve(plan=r1, user=physicist, password=PASSWORD)
    r2 = receive_plan(label="Main", fractions=3)  # a new revision: the link holds
    assert r2.previous_revision_id == r1.pk
    plan_approve(plan=r2, user=physicist, password=PASSWORD)  # 3, not 3 + 3
    assert Plan.objects.get(pk=r1.pk).status == "SUPERSEDED"


def test_several_sites_need_the_plan_linked(physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, site="Breast")
    boost = prescribe(plan.course, physician, site="Nodes", per=1.0, fractions=5)
    with pytest.raises(ValidationError, match=r"several sites \(Breast, Nodes\)"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    with pytest.raises(PermissionDenied):
        prescription_plan_link(prescription=boost, plan=plan, user=physicist)
    prescription_plan_link(prescription=boost, plan=plan, user=physician)
    assert _events("prescription.link_plan")[0].details["site"] == "Nodes"
    assert plan_approve(plan=plan, user=physicist, password=PASSWORD).status == "APPROVED"


def test_a_plan_of_another_course_cannot_be_linked(physicist: User, physician: User) -> None:
    plan = receive_plan(fractions=5)
    rx = prescribe(plan.course, physician)
    other = course_create(patient=plan.patient, user=physicist)
    rx2 = prescribe(other, physician)
    with pytest.raises(ValidationError, match="is in course C1"):
        prescription_plan_link(prescription=rx2, plan=plan, user=physician)
    assert rx.pk != rx2.pk


# --- the API -----------------------------------------------------------------------------

def _body(course_id: int, **extra: object) -> dict[str, object]:
    return {"course": course_id, "site": "Prostate", "dose_per_fraction": 1.0, "fractions": 5,
            "technique": "VMAT", "references": [
                {"name": "PTV", "primary": True, "daily_limit": 2.0},
                {"name": "Rectum", "total_limit": 4.0}], **extra}


def test_api_write_sign_amend_and_read(physician: User, physicist: User) -> None:
    plan = receive_plan(fractions=5)
    api = _api(physician)
    refused = _api(physicist).post("/api/v1/prescriptions/", _body(plan.course_id),
                                   format="json")
    assert refused.status_code == 403 and refused.json()["message"] == \
        "Only a physician may prescribe."
    made = api.post("/api/v1/prescriptions/", _body(plan.course_id), format="json")
    assert made.status_code == 201, made.json()
    rx = made.json()
    assert (rx["status"], rx["total_dose"], rx["plans"]) == ("DRAFT", 5.0, [plan.pk])
    assert [r["name"] for r in rx["references"]] == ["PTV", "Rectum"]
    bad = api.post(f"/api/v1/prescriptions/{rx['id']}/sign/", {"password": "nope"},
                   format="json")
    assert bad.status_code == 403 and bad.json()["message"] == REFUSED
    signed = api.post(f"/api/v1/prescriptions/{rx['id']}/sign/", {"password": PASSWORD},
                      format="json")
    assert signed.status_code == 200 and signed.json()["signed_by"] == physician.username
    body = _body(plan.course_id, dose_per_fraction=2.0, password=PASSWORD, reason="dose up")
    amended = api.post(f"/api/v1/prescriptions/{rx['id']}/amend/", body, format="json")
    assert amended.status_code == 200, amended.json()
    assert (amended.json()["version"], amended.json()["previous_version"]) == (2, rx["id"])
    listed = _api(physicist).get(f"/api/v1/prescriptions/?patient={plan.patient_id}"
                                 "&current=true").json()
    assert [(r["site"], r["version"]) for r in listed["results"]] == [("Prostate", 2)]
    invalid = api.post("/api/v1/prescriptions/", _body(plan.course_id, site="Nodes",
                                                       fractions=0), format="json")
    assert invalid.status_code == 400 and "fractions" in invalid.json()["message"]


def test_api_approval_refused_with_both_values_and_the_check_readable(
        physician: User, physicist: User) -> None:
    plan = receive_plan(fractions=5)
    prescribe(plan.course, physician, per=2.0, fractions=5)
    check = _api(physicist).get(f"/api/v1/plans/{plan.pk}/prescription-check/").json()
    assert check["ok"] is False and check["site"] == "Pelvis"
    dose = next(c for c in check["checks"] if c["what"] == "dose per fraction")
    assert (dose["prescribed"], dose["planned"], dose["ok"]) == ("2 Gy", "1 Gy", False)
    refused = _api(physicist).post(f"/api/v1/plans/{plan.pk}/approve/",
                                   {"password": PASSWORD}, format="json")
    assert refused.status_code == 409
    assert "1 Gy" in refused.json()["message"] and "2 Gy" in refused.json()["message"]
    none = _api(physicist).get(
        f"/api/v1/plans/{receive_plan(patient_id='OTHER', fractions=5).pk}"
        "/prescription-check/").json()
    assert none["prescription"] is None and none["ok"] is True


def test_api_links_a_plan(physician: User, physicist: User) -> None:
    plan = receive_plan(fractions=3)
    rx = prescribe(plan.course, physician)
    got = _api(physician).post(f"/api/v1/prescriptions/{rx.pk}/link/",
                               {"plan": plan.pk, "partial": True}, format="json")
    assert got.status_code == 200 and got.json()["plans"] == [plan.pk]
    assert plan_approve(plan=plan, user=physicist, password=PASSWORD).status == "APPROVED"


# --- the pages ---------------------------------------------------------------------------

def test_the_physician_writes_and_signs_on_the_page(client: Client, physician: User) -> None:
    plan = receive_plan(fractions=5)
    client.force_login(physician)
    chart = client.get(f"/patients/{plan.patient_id}/").content.decode()
    assert "No prescription" in chart and f"/courses/{plan.course_id}/prescriptions/new/" \
        in chart
    form = {"site": "Pelvis", "dose_per_fraction": "1", "fractions": "5",
            "fractionation": "DAILY_WEEKDAYS", "primary": "1", "point_1": "PTV",
            "point_2": "Bladder", "point_2_total": "4", "password": PASSWORD}
    done = client.post(f"/courses/{plan.course_id}/prescriptions/new/", form)
    rx = Prescription.objects.get()
    assert done.status_code == 302 and done["Location"] == f"/prescriptions/{rx.pk}/"
    assert rx.status == S.SIGNED and [r.name for r in rx.references.all()] == ["PTV",
                                                                                "Bladder"]
    page = client.get(f"/prescriptions/{rx.pk}/").content.decode()
    assert "1 Gy × 5 fractions = 5 Gy" in page and "dr_drew at" in page
    assert "Pelvis</a> v1" in client.get(f"/patients/{plan.patient_id}/").content.decode()
    amend = client.post(f"/prescriptions/{rx.pk}/amend/", {
        **form, "dose_per_fraction": "2", "reason": "dose escalation"})
    new = Prescription.objects.get(version=2)
    assert amend["Location"] == f"/prescriptions/{new.pk}/" and new.dose_per_fraction == 2.0


def test_the_plan_page_shows_the_prescription_and_the_check(
        client: Client, physician: User, physicist: User) -> None:
    plan = receive_plan(fractions=5)
    client.force_login(physicist)
    assert "has no prescription: approval checks the plan against none" in \
        client.get(f"/plans/{plan.pk}/").content.decode()
    prescribe(plan.course, physician, per=2.0, fractions=5)
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "Pelvis version 1" in page and "Approval will be refused" in page
    assert "✗ mismatch" in page and "✓ matches" in page  # dose off, fractions right
    refused = client.post(f"/plans/{plan.pk}/approve/", {"password": PASSWORD}, follow=True)
    assert "does not match its prescription" in refused.content.decode()
    Plan.objects.get(pk=plan.pk, status="RECEIVED")
    assert client.get(f"/courses/{plan.course_id}/prescriptions/new/").status_code == 403
