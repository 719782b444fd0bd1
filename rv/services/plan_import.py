"""plan_import: an RT Plan stored in the archive becomes clinical data, in the same
transaction as the store (called from rv.ingest via archive's on_indexed hook)."""

from __future__ import annotations

import math

from django.db import transaction
from pydicom.dataset import Dataset

import archive.models
from rv.models import (
    ApplicationSetup,
    Beam,
    BrachyChannel,
    BrachySource,
    Course,
    DoseReference,
    FractionGroup,
    FractionGroupBeam,
    FractionGroupBrachySetup,
    Patient,
    Plan,
    ToleranceTable,
    TreatmentMachine,
)
from rv.names import search_key
from rv.plan_parse import ParsedPlan, plan_parse
from rv.services.audit import audit_record


def _patient(archive_patient: archive.models.Patient) -> Patient:
    patient, _ = Patient.objects.get_or_create(
        archive_patient=archive_patient,
        defaults={"patient_id": archive_patient.patient_id,
                  "patient_name": archive_patient.patient_name,
                  "search_name": search_key(archive_patient.patient_name),
                  "birth_date": archive_patient.birth_date, "sex": archive_patient.sex})
    # Lock before you count: courses and revisions are numbered under this lock.
    return Patient.objects.select_for_update().get(pk=patient.pk)


def course_for_new_plan(*, patient: Patient, previous: Plan | None) -> Course:
    """A revision stays in its course while that is active; otherwise the patient's active
    course, or a new one named C1, C2, ..."""
    if previous is not None and previous.course.status == Course.Status.ACTIVE:
        return previous.course
    active = patient.courses.filter(status=Course.Status.ACTIVE).order_by("-created_at",
                                                                          "-id").first()
    return active or course_open(patient=patient)


def course_open(*, patient: Patient) -> Course:
    """Open the patient's next course (Cn); the caller holds the patient lock and audits."""
    return Course.objects.create(patient=patient, code=f"C{patient.courses.count() + 1}")


def _machine(name: str, manufacturer: str = "", model_name: str = "",
             cache: dict[str, TreatmentMachine] | None = None) -> TreatmentMachine | None:
    if not name:
        return None
    if cache is not None and name in cache:
        return cache[name]
    machine, _ = TreatmentMachine.objects.get_or_create(
        name=name, defaults={"manufacturer": manufacturer, "model_name": model_name})
    if cache is not None:
        cache[name] = machine
    return machine


@transaction.atomic
def plan_import(*, instance: archive.models.Instance, dataset: Dataset,
                calling_ae: str = "") -> Plan:
    """Create the plan and all its parts; raise PlanRejected (rolling back the store) if the
    plan cannot become clinical data. Never alters an earlier plan: a new SOP Instance UID
    under a known RT Plan Label is a new revision."""
    parsed = plan_parse(dataset)
    patient = _patient(instance.series.study.patient)
    previous = (Plan.objects.filter(patient=patient, label=parsed.label)
                .order_by("-revision", "-id").first())
    course = course_for_new_plan(patient=patient, previous=previous)
    plan = _plan_rows(parsed, instance=instance, patient=patient, course=course,
                      previous=previous)
    audit_record(action="plan.import", obj=plan, username=calling_ae,
                 details={"sop_instance_uid": plan.sop_instance_uid, "label": plan.label,
                          "revision": plan.revision, "course": course.code,
                          "previous_revision": previous.pk if previous else None,
                          "source": instance.source})
    return plan


def _plan_rows(p: ParsedPlan, *, instance: archive.models.Instance, patient: Patient,
               course: Course, previous: Plan | None) -> Plan:
    plan = Plan.objects.create(
        patient=patient, course=course, instance=instance,
        sop_instance_uid=p.sop_instance_uid, sop_class_uid=p.sop_class_uid, kind=p.kind,
        label=p.label, name=p.name, description=p.description, plan_date=p.plan_date,
        geometry=p.geometry, intent=p.intent, dicom_approval_status=p.approval_status,
        dicom_reviewer=p.reviewer, referenced_structure_set_uid=p.referenced_structure_set_uid,
        frame_of_reference_uid=p.frame_of_reference_uid,
        brachy_treatment_type=p.brachy_treatment_type,
        brachy_treatment_technique=p.brachy_treatment_technique,
        manufacturer=p.manufacturer, software=p.software,
        revision=previous.revision + 1 if previous else 1, previous_revision=previous)
    machines: dict[str, TreatmentMachine] = {}
    tables = {t.number: ToleranceTable.objects.create(
        source=ToleranceTable.Source.PLAN, plan=plan, number=t.number, label=t.label,
        **t.values) for t in p.tolerance_tables}
    beams = []
    for b in p.beams:
        beam = Beam(plan=plan, number=b.number, name=b.name, description=b.description,
                    machine=_machine(b.machine_name, b.manufacturer, b.model_name, machines),
                    radiation_type=b.radiation_type, beam_type=b.beam_type,
                    delivery_type=b.delivery_type,
                    primary_dosimeter_unit=b.primary_dosimeter_unit,
                    nominal_energy=b.nominal_energy,
                    final_cumulative_meterset_weight=b.final_cumulative_meterset_weight,
                    number_of_control_points=b.number_of_control_points,
                    number_of_leaves=b.number_of_leaves, scan_mode=b.scan_mode,
                    tolerance_table=tables.get(b.tolerance_table_number)
                    if b.tolerance_table_number is not None else None,
                    dose_coefficients=_curves_json(b.dose_coefficients))
        beam.set_control_points(b.control_points)
        beams.append(beam)
    by_number = {b.number: b for b in Beam.objects.bulk_create(beams)}
    sources = {s.number: BrachySource.objects.create(
        plan=plan, number=s.number, source_type=s.source_type, isotope=s.isotope,
        half_life_days=s.half_life_days, air_kerma_strength=s.air_kerma_strength,
        reference_date=s.reference_date, reference_time=s.reference_time,
        manufacturer=s.manufacturer) for s in p.sources}
    setups = {}
    for s in p.setups:
        setup = ApplicationSetup.objects.create(
            plan=plan, number=s.number, name=s.name, setup_type=s.setup_type,
            machine=_machine(s.machine_name, cache=machines),
            total_reference_air_kerma=s.total_reference_air_kerma)
        setups[s.number] = setup
        BrachyChannel.objects.bulk_create(BrachyChannel(
            setup=setup, number=c.number, source=sources[c.source_number],
            total_time=c.total_time, number_of_pulses=c.number_of_pulses,
            pulse_repetition_interval=c.pulse_repetition_interval,
            number_of_control_points=c.number_of_control_points,
            applicator_id=c.applicator_id, applicator_type=c.applicator_type,
            final_cumulative_time_weight=c.final_cumulative_time_weight,
            dose_coefficients=_curves_json(c.dose_coefficients))
            for c in s.channels)
    for g in p.fraction_groups:
        fg = FractionGroup.objects.create(
            plan=plan, number=g.number, description=g.description,
            fractions_planned=g.fractions_planned, number_of_beams=g.number_of_beams,
            number_of_brachy_setups=g.number_of_brachy_setups)
        FractionGroupBeam.objects.bulk_create(FractionGroupBeam(
            fraction_group=fg, beam=by_number[r.beam_number], meterset=r.meterset,
            dose=r.dose, reference_doses={str(k): v for k, v in r.reference_doses.items()
                                          if math.isfinite(v)})
            for r in g.beams)
        FractionGroupBrachySetup.objects.bulk_create(FractionGroupBrachySetup(
            fraction_group=fg, setup=setups[r.setup_number], dose=r.dose)
            for r in g.brachy_setups)
    DoseReference.objects.bulk_create(DoseReference(
        plan=plan, number=d.number, structure_type=d.structure_type,
        description=d.description, reference_type=d.reference_type, roi_number=d.roi_number,
        target_prescription_dose=d.target_prescription_dose,
        delivery_maximum_dose=d.delivery_maximum_dose,
        target_maximum_dose=d.target_maximum_dose,
        organ_at_risk_maximum_dose=d.organ_at_risk_maximum_dose) for d in p.dose_references)
    return plan


def _curves_json(curves: dict[int, list[tuple[float, float]]]) -> dict[str, list[list[float]]]:
    """Coefficient curves as JSON (string keys; finite numbers only, as JSON has no NaN)."""
    return {str(number): [[w, c] for w, c in points]
            for number, points in curves.items()
            if all(math.isfinite(w) and math.isfinite(c) for w, c in points)}
