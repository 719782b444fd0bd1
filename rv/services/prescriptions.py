"""A physician's prescription (issue 15): written (a draft), signed with the password again,
amended (a new signed version; the one before is kept, superseded), and plans linked to
its site. Each is one service function that checks the role (rv.roles PRESCRIBE: a
physician), locks what it changes and writes its audit event in the same transaction; a
refused signature is audited in a transaction of its own (rv.services.esign).

What a prescription then does: plan approval checks a plan against it
(rv.services.plans, rv.prescription_rules), and the set-up check and the record check its
dose limits (rv.verification.check_prescription_limits). docs/prescriptions.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from rv.errors import ValidationError
from rv.models import Course, Plan, Prescription, PrescriptionPlan, PrescriptionReference
from rv.prescription_selectors import same_name
from rv.roles import Action, require
from rv.services.audit import audit_record
from rv.services.esign import SignatureRefused, esign_refusal_audit, esign_verify

User = AbstractBaseUser | AnonymousUser
P = Prescription.Status
# Sanity bounds of what a prescription may say (Gy, fractions): beyond them, a typing slip.
MAX_DOSE_PER_FRACTION = 50.0
MAX_FRACTIONS = 200
MAX_TOTAL = 200.0
# The total dose must be the dose per fraction x fractions within this share (0.5 %).
TOTAL_SLACK = 0.005


@dataclass(frozen=True)
class ReferencePointInput:
    """A reference point and its limits (Gy; None: no limit). The primary point's total
    limit, if not given, is the prescribed total dose."""

    name: str
    primary: bool = False
    session_limit: float | None = None
    daily_limit: float | None = None
    total_limit: float | None = None


@dataclass(frozen=True)
class PrescriptionInput:
    """What the physician writes. `total_dose` None: dose per fraction x fractions."""

    site: str
    dose_per_fraction: float
    fractions: int
    total_dose: float | None = None
    technique: str = ""
    modality: str = ""
    energy: float | None = None
    fractionation: str = Prescription.Fractionation.DAILY_WEEKDAYS
    fractionation_note: str = ""
    notes: str = ""
    references: tuple[ReferencePointInput, ...] = field(default_factory=tuple)


def _gy(value: float | None, what: str, *, required: bool = False,
        high: float = MAX_TOTAL) -> float | None:
    if value is None:
        if required:
            raise ValidationError(f"Give the {what}.")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The {what} must be a number.") from None
    if not math.isfinite(number) or number <= 0 or number > high:
        raise ValidationError(f"The {what} must be a number above 0 and at most {high:g} Gy.")
    return number


def _validated(data: PrescriptionInput) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The prescription's fields and its reference points, checked; ValidationError with a
    message for the physician otherwise."""
    site = (data.site or "").strip()
    if not site or len(site) > 64:
        raise ValidationError("Name the treatment site (at most 64 characters).")
    if isinstance(data.fractions, bool) or not isinstance(data.fractions, int) or \
            not 1 <= data.fractions <= MAX_FRACTIONS:
        raise ValidationError(f"The number of fractions must be a whole number from 1 to "
                              f"{MAX_FRACTIONS}.")
    per = cast(float, _gy(data.dose_per_fraction, "dose per fraction", required=True,
                          high=MAX_DOSE_PER_FRACTION))
    product = per * data.fractions
    total = _gy(data.total_dose, "total dose")
    if total is None:
        total = round(product, 6)
    elif abs(total - product) > TOTAL_SLACK * product:
        raise ValidationError(f"The total dose {total:g} Gy is not the dose per fraction times "
                              f"the fractions ({per:g} Gy x {data.fractions} = {product:g} Gy).")
    if data.modality and data.modality not in Prescription.Modality.values:
        raise ValidationError(f"Unknown modality {data.modality!r}: one of "
                              f"{', '.join(Prescription.Modality.values)}.")
    energy = None if data.energy is None else float(data.energy)
    if energy is not None and (not math.isfinite(energy) or not 0 < energy <= 1000):
        raise ValidationError("The nominal energy must be a number above 0 (MV, MeV).")
    if data.fractionation not in Prescription.Fractionation.values:
        raise ValidationError(f"Unknown fractionation pattern {data.fractionation!r}.")
    if data.fractionation == Prescription.Fractionation.OTHER and \
            not data.fractionation_note.strip():
        raise ValidationError("Describe the fractionation pattern in the note.")
    points = [r for r in data.references if (r.name or "").strip()]
    if not points:
        raise ValidationError("Give at least the primary reference point.")
    if sum(1 for r in points if r.primary) != 1:
        raise ValidationError("Mark exactly one reference point as the primary one.")
    rows: list[dict[str, Any]] = []
    for r in points:
        name = r.name.strip()
        if len(name) > 64:
            raise ValidationError(f"Reference point name {name[:20]!r}... is too long (64).")
        if any(same_name(name, other["name"]) for other in rows):
            raise ValidationError(f"Reference point {name!r} is named twice.")
        row: dict[str, Any] = {"name": name, "primary": r.primary,
               "session_limit": _gy(r.session_limit, f"session limit of {name}"),
               "daily_limit": _gy(r.daily_limit, f"daily limit of {name}"),
               "total_limit": _gy(r.total_limit, f"total limit of {name}")}
        if r.primary:
            if row["total_limit"] is None:
                row["total_limit"] = total
            for key, floor, what in (("session_limit", per, "dose per fraction"),
                                     ("daily_limit", per, "dose per fraction"),
                                     ("total_limit", total, "total dose")):
                if row[key] is not None and row[key] < floor * (1 - TOTAL_SLACK):
                    raise ValidationError(
                        f"The primary point's {key.replace('_', ' ')} ({row[key]:g} Gy) is "
                        f"below the prescribed {what} ({floor:g} Gy): it would stop every "
                        "treatment.")
        rows.append(row)
    fields = {"site": site, "dose_per_fraction": per, "fractions": data.fractions,
              "total_dose": total, "technique": data.technique.strip()[:64],
              "modality": data.modality, "energy": energy, "fractionation": data.fractionation,
              "fractionation_note": data.fractionation_note.strip()[:200],
              "notes": data.notes.strip()}
    return fields, rows


def snapshot(rx: Prescription) -> dict[str, Any]:
    """The prescription as its audit events record it."""
    return {"id": rx.pk, "course": rx.course.code, "site": rx.site, "version": rx.version,
            "status": rx.status, "technique": rx.technique, "modality": rx.modality,
            "energy": rx.energy, "dose_per_fraction": rx.dose_per_fraction,
            "fractions": rx.fractions, "total_dose": rx.total_dose,
            "fractionation": rx.fractionation, "fractionation_note": rx.fractionation_note,
            "references": [{"name": r.name, "primary": r.primary,
                            "session_limit": r.session_limit, "daily_limit": r.daily_limit,
                            "total_limit": r.total_limit} for r in rx.references.all()]}


def _make(*, course: Course, user: User, fields: dict[str, Any], rows: list[dict[str, Any]],
          status: str, version: int = 1, previous: Prescription | None = None,
          reason: str = "") -> Prescription:
    now = timezone.now()
    rx = Prescription.objects.create(
        course=course, version=version, previous_version=previous, status=status,
        created_by=cast(Any, user), amendment_reason=reason,
        signed_by=cast(Any, user) if status == P.SIGNED else None,
        signed_at=now if status == P.SIGNED else None, **fields)
    PrescriptionReference.objects.bulk_create(
        PrescriptionReference(prescription=rx, **row) for row in rows)
    return rx


@transaction.atomic
def prescription_create(*, course: Course, user: User, data: PrescriptionInput
                        ) -> Prescription:
    """A physician writes the prescription for a site of a course: a DRAFT, until signed.
    A site that has one already is amended instead."""
    require(user, Action.PRESCRIBE)
    fields, rows = _validated(data)
    course = Course.objects.select_for_update(of=("self",)).select_related("patient").get(
        pk=course.pk)
    if course.status != Course.Status.ACTIVE:
        raise ValidationError(f"Course {course.code} is {course.status}.")
    existing = next((p for p in Prescription.objects.filter(course=course)
                     .exclude(status=P.SUPERSEDED) if same_name(p.site, fields["site"])), None)
    if existing is not None:
        raise ValidationError(f"Course {course.code} has a prescription for {existing.site} "
                              f"already (version {existing.version}, {existing.status}): "
                              "amend it.")
    rx = _make(course=course, user=user, fields=fields, rows=rows, status=P.DRAFT)
    audit_record(action="prescription.create", obj=rx, user=user, details=snapshot(rx))
    return rx


def prescription_sign(*, prescription: Prescription, user: User, password: str
                      ) -> Prescription:
    """The physician signs a draft with their password again; a refused signature is
    audited and outlives the rollback."""
    require(user, Action.PRESCRIBE)
    try:
        return _sign(prescription=prescription, user=user, password=password)
    except SignatureRefused as refused:
        esign_refusal_audit(refused)
        raise


@transaction.atomic
def _sign(*, prescription: Prescription, user: User, password: str) -> Prescription:
    esign_verify(username=user.get_username(), password=password, action=Action.PRESCRIBE,
                 by=user, subject=prescription)
    rx = Prescription.objects.select_for_update(of=("self",)).select_related("course").get(
        pk=prescription.pk)
    if rx.status != P.DRAFT:
        raise ValidationError(f"The prescription for {rx.site} v{rx.version} is {rx.status}: "
                              "only a draft is signed (a signed one is amended).")
    rx.status, rx.signed_by, rx.signed_at = P.SIGNED, cast(Any, user), timezone.now()
    rx.save(update_fields=["status", "signed_by", "signed_at"])
    audit_record(action="prescription.sign", obj=rx, user=user, details=snapshot(rx))
    return rx


def prescription_amend(*, prescription: Prescription, user: User, password: str,
                       data: PrescriptionInput, reason: str) -> Prescription:
    """The physician amends the prescription, signing again: a new version, signed; the
    version before is kept, SUPERSEDED. The site stays the same (a new site is a new
    prescription). A refused signature is audited and outlives the rollback."""
    require(user, Action.PRESCRIBE)
    try:
        return _amend(prescription=prescription, user=user, password=password, data=data,
                      reason=reason)
    except SignatureRefused as refused:
        esign_refusal_audit(refused)
        raise


@transaction.atomic
def _amend(*, prescription: Prescription, user: User, password: str,
           data: PrescriptionInput, reason: str) -> Prescription:
    esign_verify(username=user.get_username(), password=password, action=Action.PRESCRIBE,
                 by=user, subject=prescription)
    old = Prescription.objects.select_for_update(of=("self",)).select_related("course").get(
        pk=prescription.pk)
    if old.status == P.SUPERSEDED:
        newest = old
        while (nxt := Prescription.objects.filter(previous_version=newest).first()) is not None:
            newest = nxt
        raise ValidationError(f"Version {old.version} of {old.site} has been amended since: "
                              f"amend the current version ({newest.version}).")
    if not reason.strip():
        raise ValidationError("Give the reason for the amendment.")
    fields, rows = _validated(data)
    if not same_name(fields["site"], old.site):
        raise ValidationError(f"An amendment keeps the site ({old.site}); a new site is a new "
                              "prescription.")
    fields["site"] = old.site
    before = snapshot(old)
    old.status = P.SUPERSEDED
    old.save(update_fields=["status"])
    rx = _make(course=old.course, user=user, fields=fields, rows=rows, status=P.SIGNED,
               version=old.version + 1, previous=old, reason=reason.strip())
    audit_record(action="prescription.amend", obj=rx, user=user, details={
        "reason": rx.amendment_reason, "from": before, "to": snapshot(rx)})
    return rx


@transaction.atomic
def prescription_plan_link(*, prescription: Prescription, plan: Plan, user: User,
                           partial: bool = False) -> PrescriptionPlan:
    """A physician states which site's prescription a plan (and its later revisions) is
    for; `partial`: one of several sequential or boost plans that together give the
    prescribed fractions. Linking again moves the plan."""
    require(user, Action.PRESCRIBE)
    # The plan row first, then the prescription's: the order the set-up check takes them.
    plan = Plan.objects.select_for_update(of=("self",)).select_related("course").get(pk=plan.pk)
    rx = Prescription.objects.select_for_update(of=("self",)).select_related("course").get(
        pk=prescription.pk)
    if rx.status == P.SUPERSEDED:
        raise ValidationError(f"Version {rx.version} of {rx.site} has been amended: link the "
                              "plan to the current version.")
    if plan.course_id != rx.course_id:
        raise ValidationError(f"Plan {plan.label} is in course {plan.course.code}, the "
                              f"prescription in {rx.course.code}.")
    before = PrescriptionPlan.objects.filter(plan=plan).first()
    link, _ = PrescriptionPlan.objects.update_or_create(
        plan=plan, defaults={"course": rx.course, "site": rx.site, "partial": partial,
                             "linked_by": cast(Any, user)})
    audit_record(action="prescription.link_plan", obj=link, user=user, details={
        "plan": plan.pk, "label": plan.label, "revision": plan.revision, "site": rx.site,
        "prescription": rx.pk, "partial": partial,
        "from": {"site": before.site, "partial": before.partial} if before else None})
    return link


def reference_inputs(rows: list[dict[str, Any]]) -> tuple[ReferencePointInput, ...]:
    """Reference points from plain dicts (the API's and the form's rows)."""
    return tuple(ReferencePointInput(
        name=str(r.get("name") or ""), primary=bool(r.get("primary")),
        session_limit=r.get("session_limit"), daily_limit=r.get("daily_limit"),
        total_limit=r.get("total_limit")) for r in rows)
