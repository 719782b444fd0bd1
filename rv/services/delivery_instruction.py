"""Store the RT Beams Delivery Instruction of a worklist step (TDW-II RO-61 serves it): built
by rv.records.delivery_instruction, stored in the archive through the same door as received
objects, in the plan's study, so Query/Retrieve (C-MOVE) finds it there. Not queued for
export: it is an input of the treatment machine, not a result."""

from __future__ import annotations

from django.db import transaction

from archive.dicomio import dataset_part10
from archive.models import Instance
from archive.services import instance_store
from rv.models import Plan
from rv.records.delivery_instruction import BeamTask, OmittedBeam, delivery_instruction_build


@transaction.atomic
def delivery_instruction_store(*, plan: Plan, fraction_number: int, tasks: list[BeamTask],
                               omitted: list[OmittedBeam]) -> Instance:
    """Build and store the instruction; returns its archive Instance. Raises
    rv.errors.ValidationError (nothing stored) for what delivery_instruction_build refuses.
    No audit event: the caller (who schedules the step) audits it, in its own transaction;
    a caller that may roll back after this returns wraps its transaction in
    archive.services.files_removed_on_rollback, as session recording does."""
    ds = delivery_instruction_build(plan=plan, fraction_number=fraction_number, tasks=tasks,
                                    omitted=omitted)
    return instance_store(data=dataset_part10(ds), source="generated").instance
