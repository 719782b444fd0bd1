"""Couch positions captured at the first fraction (plans rarely carry table-top positions):
recorded at fraction 1, confirmed by a second person, then the reference later fractions'
set-up is checked against with the beam's table-top tolerances (as ARIA and MOSAIQ do)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from rv.errors import PermissionDenied, ValidationError
from rv.models import CouchReference, Plan, Session, SetupClearance
from rv.roles import CONFIRM_COUCH, require
from rv.services.audit import audit_record
from rv.services.treatment_facts import BeamInput
from rv.treatment_request import PLANNED_KEY, POSITIONS

User = AbstractBaseUser | AnonymousUser


def couch_capture(*, session: Session, beams: list[BeamInput],
                  clearance: SetupClearance | None, user: User | None) -> list[CouchReference]:
    """In the session's transaction, at fraction 1: each beam's table positions (as recorded,
    else as read at the set-up check) become its unconfirmed reference, unless the plan
    carries positions or a reference exists over the revision chain."""
    chain = [p.pk for p in session.plan.revision_chain()]
    have = set(CouchReference.objects.filter(plan_id__in=chain)
               .values_list("beam_number", flat=True))
    checked = {row["beam"]: row.get("actual", {}) for row in
               (clearance.checked if clearance else [])}
    made = []
    for b in beams:
        number = b.beam.number
        if number in have or any(b.beam.first(PLANNED_KEY[n]) is not None for n in POSITIONS):
            continue
        values = {n: getattr(b.setting, n) for n in POSITIONS}
        if all(x is None for x in values.values()):
            values = {n: checked.get(number, {}).get(n) for n in POSITIONS}
        if all(x is None for x in values.values()):
            continue
        made.append(CouchReference.objects.create(
            plan=session.plan, beam_number=number, captured_session=session,
            captured_by=cast(Any, user), **values))
    if made:
        audit_record(action="couch.capture", obj=session, user=user, details={
            "beams": {r.beam_number: {n: getattr(r, n) for n in POSITIONS} for r in made}})
    return made


@transaction.atomic
def couch_reference_confirm(*, plan: Plan, user: User) -> list[CouchReference]:
    """A second person (not who captured them) confirms the plan's captured positions."""
    require(user, CONFIRM_COUCH)
    chain = [p.pk for p in plan.revision_chain()]
    pending = list(CouchReference.objects.select_for_update()
                   .filter(plan_id__in=chain, confirmed_at=None))
    if not pending:
        raise ValidationError("No captured couch positions await confirmation.")
    if any(r.captured_by_id == getattr(user, "pk", None) for r in pending):
        raise PermissionDenied("A second person must confirm the couch positions, not the "
                               "one who recorded them.")
    now = timezone.now()
    for r in pending:
        r.confirmed_by = cast(Any, user)
        r.confirmed_at = now
        r.save(update_fields=["confirmed_by", "confirmed_at"])
    audit_record(action="couch.confirm", obj=plan, user=user, details={
        "beams": {r.beam_number: {n: getattr(r, n) for n in POSITIONS} for r in pending}})
    return pending
