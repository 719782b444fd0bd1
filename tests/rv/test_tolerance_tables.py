"""Physicists' tolerance tables: define, assign to beams carrying none, version once used."""

from __future__ import annotations

import pytest

from rv.errors import PermissionDenied, ValidationError
from rv.models import AuditEvent, ToleranceTable, TreatmentMachine
from rv.services.tolerance import (
    tolerance_table_assign,
    tolerance_table_create,
    tolerance_table_update,
)
from rv.tolerance import Tolerances
from tests.rv.conftest import receive_plan

pytestmark = pytest.mark.django_db


def _plan_without_table():  # type: ignore[no-untyped-def]
    plan = receive_plan(machine="TB1")
    beam = plan.beams.get()
    beam.tolerance_table = None
    beam.save()
    return plan, beam


def test_physicist_defines_and_assigns_a_table(physicist) -> None:  # type: ignore[no-untyped-def]
    plan, beam = _plan_without_table()
    table = tolerance_table_create(user=physicist, machine=beam.machine, label="Standard",
                                   values={"gantry_angle": 1.0, "mlc": 2.0, "meterset": 1.0})
    tolerance_table_assign(beam=beam, table=table, user=physicist)
    beam.refresh_from_db()
    assert beam.tolerance_table == table
    assert AuditEvent.objects.filter(action="beam.assign_tolerance_table").count() == 1
    assert Tolerances.from_values(table.values()).gantry_angle == 1.0


def test_therapist_cannot_define_tables(therapist) -> None:  # type: ignore[no-untyped-def]
    machine = TreatmentMachine.objects.create(name="TB9")
    with pytest.raises(PermissionDenied):
        tolerance_table_create(user=therapist, machine=machine, label="x", values={})


def test_beam_carrying_a_plan_table_keeps_it(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(machine="TB2")
    beam = plan.beams.get()
    assert beam.tolerance_table.source == ToleranceTable.Source.PLAN
    table = tolerance_table_create(user=physicist, machine=beam.machine, label="S", values={})
    with pytest.raises(ValidationError, match="from its plan"):
        tolerance_table_assign(beam=beam, table=table, user=physicist)


def test_table_for_another_machine_is_refused(physicist) -> None:  # type: ignore[no-untyped-def]
    _, beam = _plan_without_table()
    other = TreatmentMachine.objects.create(name="OTHER")
    table = tolerance_table_create(user=physicist, machine=other, label="S", values={})
    with pytest.raises(ValidationError, match="another machine"):
        tolerance_table_assign(beam=beam, table=table, user=physicist)


def test_unused_table_is_edited_in_place(physicist) -> None:  # type: ignore[no-untyped-def]
    machine = TreatmentMachine.objects.create(name="TB3")
    table = tolerance_table_create(user=physicist, machine=machine, label="S",
                                   values={"gantry_angle": 1.0})
    same = tolerance_table_update(table=table, user=physicist, values={"gantry_angle": 2.0})
    assert same.pk == table.pk and same.gantry_angle == 2.0 and same.version == 1


def test_table_used_for_a_delivered_beam_changes_by_new_version(physicist) -> None:  # type: ignore[no-untyped-def]
    plan, beam = _plan_without_table()
    table = tolerance_table_create(user=physicist, machine=beam.machine, label="S",
                                   values={"gantry_angle": 1.0, "couch_angle": 0.5})
    tolerance_table_assign(beam=beam, table=table, user=physicist)
    ToleranceTable.objects.filter(pk=table.pk).update(used_for_delivery=True)  # issue 5
    new = tolerance_table_update(table=table, user=physicist, values={"gantry_angle": 3.0})
    table.refresh_from_db()
    assert (table.gantry_angle, table.is_current) == (1.0, False)  # frozen as used
    assert (new.version, new.previous, new.gantry_angle, new.couch_angle) == (2, table, 3.0,
                                                                              0.5)
    beam.refresh_from_db()
    assert beam.tolerance_table == new  # the plan still in treatment follows the new version
    with pytest.raises(ValidationError, match="current version"):
        tolerance_table_update(table=table, user=physicist, values={"gantry_angle": 9.0})


def test_negative_tolerance_refused(physicist) -> None:  # type: ignore[no-untyped-def]
    machine = TreatmentMachine.objects.create(name="TB4")
    with pytest.raises(ValidationError, match="negative"):
        tolerance_table_create(user=physicist, machine=machine, label="S",
                               values={"mlc": -1.0})


def test_no_table_means_zero_tolerance() -> None:
    zero = Tolerances.from_values(None)
    assert zero == Tolerances() and zero.mlc == 0.0 and zero.meterset == 0.0
    partial = Tolerances.from_values({"gantry_angle": 1.0, "mlc": None})
    assert (partial.gantry_angle, partial.mlc) == (1.0, 0.0)
