"""Reads of rv's clinical data for the web UI and API (services write, selectors read)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from rv.models import Beam, Course, FractionGroup, Patient, Plan, Session, SessionDose


def plan_fractions_delivered(*, plan: Plan) -> int:
    """Fractions completed toward this plan, counting those delivered under its earlier
    revisions (a fraction with a beam still to continue does not count yet)."""
    chain = [p.pk for p in plan.revision_chain()]
    return (Session.objects.filter(plan_id__in=chain, fraction_complete=True)
            .values("fraction_number").distinct().count())


def delivered_dose_by_reference(*, plan: Plan) -> dict[int, float]:
    """Dose delivered so far (Gy) to each dose reference, by dose reference number, over the
    plan's revision chain: the cumulative dose stored with the latest session."""
    chain = [p.pk for p in plan.revision_chain()]
    out: dict[int, float] = {}
    rows = (SessionDose.objects.filter(session__plan_id__in=chain)
            .select_related("dose_reference")
            .order_by("session__treated_at", "session_id"))
    for row in rows:
        out[row.dose_reference.number] = row.cumulative_dose
    return out


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    qs = Patient.objects.all()
    if search.strip():
        from django.db.models import Q
        qs = qs.filter(Q(patient_id__icontains=search.strip())
                       | Q(patient_name__icontains=search.strip()))
    return qs.order_by("patient_name", "patient_id")


def course_list_for_patient(*, patient: Patient) -> QuerySet[Course]:
    plans = Plan.objects.prefetch_related("fraction_groups").order_by("label", "revision")
    return patient.courses.prefetch_related(Prefetch("plans", queryset=plans)).order_by(
        "created_at", "id")


def plan_detail(*, pk: int) -> Plan:
    beams = Beam.objects.select_related("machine", "tolerance_table").order_by("number")
    groups = FractionGroup.objects.prefetch_related("beam_refs__beam", "brachy_refs__setup")
    return (Plan.objects.select_related("patient", "course", "approved_by", "instance")
            .prefetch_related(Prefetch("beams", queryset=beams),
                              Prefetch("fraction_groups", queryset=groups),
                              "dose_references", "sources", "application_setups__channels",
                              "tolerance_tables")
            .get(pk=pk))
