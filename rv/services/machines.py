"""A physicist's machine settings that verification relies on: the meterset tolerance
policy and beam-matched machine groups."""

from __future__ import annotations

import math
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from rv.errors import ValidationError
from rv.models import MachineGroup, TreatmentMachine
from rv.roles import EDIT_TOLERANCE, require
from rv.services.audit import audit_record

User = AbstractBaseUser | AnonymousUser


def _limit(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{what} must be a number of at least 0.")
    return float(value)


@transaction.atomic
def machine_meterset_policy_set(*, machine: TreatmentMachine, user: User,
                                absolute: float | None, percent: float | None
                                ) -> TreatmentMachine:
    """The meterset tolerance that applies where a beam's tolerance table gives none
    (absolute in the beam's unit and/or percent of the specified meterset; both: the larger).
    """
    require(user, EDIT_TOLERANCE)
    absolute = _limit(absolute, "The absolute meterset tolerance")
    percent = _limit(percent, "The percent meterset tolerance")
    if percent is not None and percent > 100:
        raise ValidationError("The percent meterset tolerance must be at most 100.")
    machine = TreatmentMachine.objects.select_for_update().get(pk=machine.pk)
    before = {"absolute": machine.meterset_tolerance_mu,
              "percent": machine.meterset_tolerance_percent}
    machine.meterset_tolerance_mu, machine.meterset_tolerance_percent = absolute, percent
    machine.save(update_fields=["meterset_tolerance_mu", "meterset_tolerance_percent"])
    audit_record(action="machine.meterset_policy", obj=machine, user=user, details={
        "from": before, "to": {"absolute": absolute, "percent": percent}})
    return machine


@transaction.atomic
def machine_prescription_tolerance_set(*, machine: TreatmentMachine, user: User,
                                       percent: float | None) -> TreatmentMachine:
    """How far (percent of the prescribed dose per fraction) a plan for this machine may be
    from its prescription at approval (issue 15); None: RV_PRESCRIPTION_TOLERANCE_PERCENT."""
    require(user, EDIT_TOLERANCE)
    percent = _limit(percent, "The prescription tolerance")
    if percent is not None and percent > 50:
        raise ValidationError("The prescription tolerance must be at most 50 %.")
    machine = TreatmentMachine.objects.select_for_update().get(pk=machine.pk)
    before = machine.prescription_tolerance_percent
    machine.prescription_tolerance_percent = percent
    machine.save(update_fields=["prescription_tolerance_percent"])
    audit_record(action="machine.prescription_tolerance", obj=machine, user=user,
                 details={"from": before, "to": percent})
    return machine


@transaction.atomic
def machine_group_save(*, name: str, machines: list[TreatmentMachine], user: User
                       ) -> MachineGroup:
    """Declare machines beam-matched (a plan for one may be treated on the others), or
    change a group's members; fewer than two members removes the declaration's effect."""
    require(user, EDIT_TOLERANCE)
    name = name.strip()
    if not name:
        raise ValidationError("Name the group of beam-matched machines.")
    group, created = MachineGroup.objects.get_or_create(
        name=name, defaults={"created_by": cast(Any, user)})
    before = sorted(group.machines.values_list("name", flat=True))
    group.machines.set(machines)
    audit_record(action="machine_group.save", obj=group, user=user, details={
        "created": created, "from": before, "to": sorted(m.name for m in machines)})
    return group
