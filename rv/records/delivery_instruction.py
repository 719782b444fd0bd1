"""RT Beams Delivery Instruction (PS3.3 A.64) Verity, as IHE-RO TDW-II Treatment Management
System, generates for each workitem of a treatment machine's UPS worklist: which beams of the
plan the machine delivers in this step, and how (TDW-II RO-61 retrieves it).

Modules (A.64): Patient, General Study, General Series (Modality PLAN, Verity's series
"Verity delivery instructions"), General Equipment and SOP Common as rv.records.common builds
them; C.12.2 Common Instance Reference (the plan); C.8.8.29 RT Beams Delivery Instruction:
Referenced RT Plan Sequence, Beam Task Sequence (one item per beam to deliver, in delivery
order) and Omitted Beam Task Sequence (the plan's beams this step leaves out, and why).

Partial delivery (C.8.8.21.2, TDW-II "Partial delivery"): a beam begun in an earlier session
of the fraction is a CONTINUATION from the meterset delivered so far to the beam's fraction
meterset; a beam finished is omitted as ALREADY_TREATED; the rest are TREATMENT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTBeamsDeliveryInstructionStorage

from rv import verification as v
from rv.errors import ValidationError
from rv.models import Beam, Plan
from rv.records.common import (
    INSTRUCTIONS_SERIES,
    new_instance,
    plan_dataset,
    referenced_plan,
)
from rv.services.plan_state import PlanState

TREATMENT, CONTINUATION = "TREATMENT", "CONTINUATION"
ALREADY_TREATED = "ALREADY_TREATED"
# C.8.8.29 Primary Dosimeter Unit, enumerated values
_UNITS = frozenset({"MU", "MINUTE", "NP"})
# C.8.8.29 Beam Task Sequence, Type 2: the patient set-up adjustments and displacements the
# machine is told to apply. Verity asks for none: present, empty.
_SETUP_TYPE2 = ("TableTopVerticalAdjustedPosition", "TableTopLongitudinalAdjustedPosition",
                "TableTopLateralAdjustedPosition", "PatientSupportAdjustedAngle",
                "TableTopEccentricAdjustedAngle", "TableTopPitchAdjustedAngle",
                "TableTopRollAdjustedAngle", "TableTopVerticalSetupDisplacement",
                "TableTopLongitudinalSetupDisplacement", "TableTopLateralSetupDisplacement")


@dataclass(frozen=True)
class BeamTask:
    """One Beam Task Sequence item to deliver."""

    beam_number: int
    delivery_type: str     # "TREATMENT" or "CONTINUATION"
    start_meterset: float | None = None   # Continuation Start Meterset (delivered so far)
    end_meterset: float | None = None     # Continuation End Meterset (the beam's fraction meterset)


@dataclass(frozen=True)
class OmittedBeam:
    """One Omitted Beam Task Sequence item: a beam of the plan this step does not deliver."""

    beam_number: int
    reason: str = ALREADY_TREATED


def beam_tasks(*, state: PlanState, fraction_number: int, fraction_group: int | None = None,
               ) -> tuple[list[BeamTask], list[OmittedBeam]]:
    """What fraction `fraction_number` still needs of each beam, from `state`
    (rv.services.plan_state: beam_delivered[fraction][beam] lists what sessions delivered of
    the beam in that fraction; specified metersets are the plan's fraction group's).

    Beams untouched in the fraction are TREATMENT; beams partly delivered CONTINUATION with
    start = the sum delivered so far, end = the beam's fraction meterset; beams finished (as
    the console judges it: nothing left, or the fraction recorded complete) are omitted as
    ALREADY_TREATED. Beams in delivery order: beam number, as the console lists them.
    `fraction_group`: only that fraction group's beams (an instruction carries one group's,
    C.8.8.29); None: every treatment beam of the plan."""
    delivered = state.beam_delivered.get(fraction_number, {})
    left = {} if fraction_number in state.complete else state.left_beams(fraction_number)
    in_group = _group_beams(state.plan, fraction_group) if fraction_group is not None else None
    tasks: list[BeamTask] = []
    omitted: list[OmittedBeam] = []
    for number, b in sorted(state.beams.items()):
        if in_group is not None and number not in in_group:
            continue
        so_far = math.fsum(delivered.get(number, []))
        if number not in left:
            omitted.append(OmittedBeam(beam_number=number))
        elif so_far > v.EPS * max(1.0, b.specified):
            tasks.append(BeamTask(beam_number=number, delivery_type=CONTINUATION,
                                  start_meterset=so_far, end_meterset=b.specified))
        else:
            tasks.append(BeamTask(beam_number=number, delivery_type=TREATMENT))
    return tasks, omitted


def _group_beams(plan: Plan, fraction_group: int) -> set[int]:
    fg = plan.fraction_groups.filter(number=fraction_group).first()
    if fg is None:
        raise ValidationError(f"Plan {plan.label} has no fraction group {fraction_group}.")
    return {ref.beam.number for ref in fg.beam_refs.select_related("beam")}


def delivery_instruction_build(*, plan: Plan, fraction_number: int, tasks: list[BeamTask],
                               omitted: list[OmittedBeam], plan_ds: Dataset | None = None,
                               when: datetime | None = None) -> Dataset:
    """The RT Beams Delivery Instruction data set (not stored) for fraction `fraction_number`
    of `plan` (an RT Plan or RT Ion Plan): `tasks` in delivery order, `omitted` the beams
    left out. `plan_ds`: the plan's stored data set, if the caller has read it already;
    `when`: the Instance Creation Date and Time (default now). Raises ValidationError for a
    brachytherapy plan, a beam number the plan lacks (or a setup beam), a task that does not
    make sense, or beams of two fraction groups."""
    beams, groups = _check(plan=plan, fraction_number=fraction_number, tasks=tasks,
                           omitted=omitted)
    plan_ds = plan_dataset(plan) if plan_ds is None else plan_ds
    ds = new_instance(plan=plan, sop_class_uid=RTBeamsDeliveryInstructionStorage,
                      series=INSTRUCTIONS_SERIES, modality="PLAN", plan_ds=plan_ds,
                      created=when)
    # C.12.2 Common Instance Reference: the plan, in the same study (required unless a UPS
    # conveys it; present, so the object read on its own still says what it refers to).
    ds.ReferencedSeriesSequence = Sequence([_plan_series(plan, plan_ds)])
    # C.8.8.29 RT Beams Delivery Instruction
    ds.ReferencedRTPlanSequence = Sequence([referenced_plan(plan)])
    several = plan.fraction_groups.count() > 1
    items = []
    for index, task in enumerate(tasks, start=1):
        item = Dataset()
        item.BeamTaskType = "TREAT"
        item.TreatmentDeliveryType = task.delivery_type
        if task.delivery_type == CONTINUATION:
            assert task.start_meterset is not None and task.end_meterset is not None
            item.PrimaryDosimeterUnit = _unit(beams[task.beam_number])
            item.ContinuationStartMeterset = task.start_meterset
            item.ContinuationEndMeterset = task.end_meterset
        item.CurrentFractionNumber = fraction_number
        if several:
            item.ReferencedFractionGroupNumber = groups[task.beam_number]
        item.ReferencedBeamNumber = task.beam_number
        item.BeamOrderIndex = index  # Type 3: the order the machine delivers them in
        for keyword in _SETUP_TYPE2:
            setattr(item, keyword, None)
        # Delivery Verification Image Sequence (2C) is for VERIFY tasks only: none here.
        items.append(item)
    ds.BeamTaskSequence = Sequence(items)
    if omitted:
        out = []
        for o in omitted:
            item = Dataset()
            item.ReferencedBeamNumber = o.beam_number
            item.ReasonForOmission = o.reason
            out.append(item)
        ds.OmittedBeamTaskSequence = Sequence(out)
    return ds


def _plan_series(plan: Plan, plan_ds: Dataset) -> Dataset:
    """A Referenced Series Sequence item (C.12.2): the plan's series and the plan in it."""
    ref = Dataset()
    ref.ReferencedSOPClassUID = plan.sop_class_uid
    ref.ReferencedSOPInstanceUID = plan.sop_instance_uid
    series = Dataset()
    series.SeriesInstanceUID = plan_ds.SeriesInstanceUID
    series.ReferencedInstanceSequence = Sequence([ref])
    return series


def _unit(beam: Beam) -> str:
    unit = (beam.primary_dosimeter_unit or "MU").strip().upper()
    return unit if unit in _UNITS else "MU"


def _check(*, plan: Plan, fraction_number: int, tasks: list[BeamTask],
           omitted: list[OmittedBeam]) -> tuple[dict[int, Beam], dict[int, int]]:
    """Refuse what cannot become a valid instruction; the plan's beams by number and the
    fraction group each belongs to (the first that holds it)."""
    if plan.kind == Plan.Kind.BRACHY:
        raise ValidationError(
            f"Plan {plan.label} is a brachytherapy plan: an RT Beams Delivery Instruction "
            "is for RT Plans and RT Ion Plans with beams.")
    if fraction_number < 1:
        raise ValidationError(f"Fraction number {fraction_number} is not a fraction (from 1).")
    if not tasks:
        raise ValidationError("An RT Beams Delivery Instruction needs at least one beam to "
                              "deliver; every beam of this fraction is omitted.")
    beams = {b.number: b for b in plan.beams.all()}
    groups: dict[int, int] = {}
    for fg in plan.fraction_groups.prefetch_related("beam_refs__beam").order_by("number"):
        for ref in fg.beam_refs.all():
            groups.setdefault(ref.beam.number, fg.number)
    numbers = [t.beam_number for t in tasks] + [o.beam_number for o in omitted]
    for number in numbers:
        if number not in beams:
            raise ValidationError(f"Plan {plan.label} has no beam {number}.")
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise ValidationError(f"Beam {', '.join(map(str, twice))} is listed more than once "
                              "in the instruction.")
    for t in tasks:
        beam = beams[t.beam_number]
        if beam.is_setup:
            raise ValidationError(f"Beam {t.beam_number} is a setup beam: nothing to treat.")
        if t.beam_number not in groups:
            raise ValidationError(f"Beam {t.beam_number} is in no fraction group of plan "
                                  f"{plan.label}.")
        _check_task(t)
    used = sorted({groups[t.beam_number] for t in tasks})
    if len(used) > 1:
        raise ValidationError(
            "An RT Beams Delivery Instruction delivers one fraction group (PS3.3 C.8.8.29); "
            f"these beams belong to fraction groups {', '.join(map(str, used))}: make one "
            "instruction per group.")
    for o in omitted:
        reason = o.reason.strip()
        if not reason or len(reason) > 16 or not all(c.isupper() or c.isdigit() or c in " _"
                                                      for c in reason):
            raise ValidationError(f"Reason for omission {o.reason!r} of beam {o.beam_number} "
                                  "is not a code (capitals, digits, _; at most 16).")
    return beams, groups


def _check_task(t: BeamTask) -> None:
    if t.delivery_type == TREATMENT:
        if t.start_meterset is not None or t.end_meterset is not None:
            raise ValidationError(f"Beam {t.beam_number}: a TREATMENT task has no "
                                  "continuation metersets.")
        return
    if t.delivery_type != CONTINUATION:
        raise ValidationError(f"Beam {t.beam_number}: delivery type {t.delivery_type!r} is "
                              "neither TREATMENT nor CONTINUATION.")
    start, end = t.start_meterset, t.end_meterset
    if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)) \
            or not 0 <= start < end:
        raise ValidationError(f"Beam {t.beam_number}: a CONTINUATION needs a start meterset "
                              f"(delivered so far, {start}) below its end meterset ({end}).")
