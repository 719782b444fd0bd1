"""Tolerance tables a physicist defines per machine (PS3.3 C.8.8.11 is the plan's own kind).

A table that has been used for a delivered beam is frozen: a change makes a new version,
and the beams of plans still in treatment follow the new version."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from rv.errors import ValidationError
from rv.models import Beam, Plan, ToleranceTable, TreatmentMachine
from rv.models.machine import TOLERANCE_FIELDS
from rv.roles import Action, require
from rv.services.audit import audit_record

User = AbstractBaseUser | AnonymousUser
_NAMES = {name for name, _ in TOLERANCE_FIELDS}
_OPEN_PLANS = (Plan.Status.RECEIVED, Plan.Status.APPROVED, Plan.Status.ON_HOLD)


def _clean(values: dict[str, float | None]) -> dict[str, float | None]:
    unknown = set(values) - _NAMES
    if unknown:
        raise ValidationError(f"Unknown tolerance: {', '.join(sorted(unknown))}.")
    for name, value in values.items():
        if value is not None and value < 0:
            raise ValidationError(f"Tolerance {name} cannot be negative.")
    return values


def _locked_current(table: ToleranceTable) -> ToleranceTable:
    table = ToleranceTable.objects.select_for_update().get(pk=table.pk)
    if table.source != ToleranceTable.Source.USER or not table.is_current:
        raise ValidationError("Only the current version of a physicist's table can change.")
    return table


@transaction.atomic
def tolerance_table_create(*, user: User, machine: TreatmentMachine, label: str,
                           values: dict[str, float | None]) -> ToleranceTable:
    require(user, Action.TOLERANCE_EDIT)
    if not label.strip():
        raise ValidationError("A tolerance table needs a label.")
    table = ToleranceTable.objects.create(source=ToleranceTable.Source.USER, machine=machine,
                                          label=label.strip()[:64], **_clean(values))
    audit_record(action="tolerance_table.create", obj=table, user=user,
                 details={"machine": machine.name, "label": table.label, **table.values()})
    return table


@transaction.atomic
def tolerance_table_new_version(*, table: ToleranceTable, user: User,
                                values: dict[str, float | None]) -> ToleranceTable:
    """Freeze `table` and make its successor with `values` changed."""
    require(user, Action.TOLERANCE_EDIT)
    table = _locked_current(table)
    new = ToleranceTable.objects.create(
        source=table.source, machine=table.machine, label=table.label,
        version=table.version + 1, previous=table, **{**table.values(), **_clean(values)})
    table.is_current = False
    table.save(update_fields=["is_current"])
    moved = Beam.objects.filter(tolerance_table=table, plan__status__in=_OPEN_PLANS).update(
        tolerance_table=new)
    audit_record(action="tolerance_table.new_version", obj=new, user=user,
                 details={"previous": table.pk, "version": new.version,
                          "beams_moved": moved, **new.values()})
    return new


@transaction.atomic
def tolerance_table_update(*, table: ToleranceTable, user: User,
                           values: dict[str, float | None]) -> ToleranceTable:
    """Edit in place while never used for a delivery; otherwise make a new version."""
    require(user, Action.TOLERANCE_EDIT)
    table = _locked_current(table)
    if table.used_for_delivery:
        return tolerance_table_new_version(table=table, user=user, values=values)
    before = table.values()
    for name, value in _clean(values).items():
        setattr(table, name, value)
    table.save()
    audit_record(action="tolerance_table.update", obj=table, user=user,
                 details={"before": before, "after": table.values()})
    return table


@transaction.atomic
def tolerance_table_assign(*, beam: Beam, table: ToleranceTable, user: User) -> Beam:
    """Give a beam that carries no tolerance table from its plan one of its machine's."""
    require(user, Action.TOLERANCE_EDIT)
    beam = Beam.objects.select_for_update(of=("self",)).select_related(
        "plan", "tolerance_table").get(
        pk=beam.pk)
    if beam.tolerance_table is not None and \
            beam.tolerance_table.source == ToleranceTable.Source.PLAN:
        raise ValidationError(f"Beam {beam.number} carries tolerance table "
                              f"{beam.tolerance_table.label} from its plan.")
    if table.source != ToleranceTable.Source.USER or not table.is_current:
        raise ValidationError("Assign the current version of a physicist's table.")
    if table.machine_id != beam.machine_id:
        raise ValidationError(f"Table {table.label} is for another machine.")
    if beam.plan.status not in _OPEN_PLANS:
        raise ValidationError(f"The plan is {beam.plan.status}.")
    before = beam.tolerance_table_id
    beam.tolerance_table = table
    beam.save(update_fields=["tolerance_table"])
    audit_record(action="beam.assign_tolerance_table", obj=beam, user=user,
                 details={"from": before, "to": table.pk, "plan": beam.plan_id})
    return beam
