"""Clinical pages: patients, the patient chart, the plan page with its actions, and the
physicists' tolerance tables. Thin doors into rv.services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from rv.banner_selectors import patient_banner
from rv.chart_selectors import plans_fractions_delivered, plans_review_flags
from rv.errors import DomainError
from rv.forms import (
    ApproveForm,
    AssignToleranceForm,
    MoveForm,
    ReasonForm,
    ToleranceTableForm,
    assignable_tables,
)
from rv.models import (
    Appointment,
    Beam,
    CouchReference,
    Course,
    Patient,
    Plan,
    ToleranceTable,
    TreatmentMachine,
)
from rv.models.machine import TOLERANCE_FIELDS
from rv.prescription_selectors import current_prescriptions_by_course, plan_prescription_check
from rv.roles import Action, can
from rv.selectors import (
    chain_doses,
    course_list_for_patient,
    delivered_dose_by_reference,
    detail_contributions,
    dose_chart,
    patient_list,
    plan_detail,
    plan_device_records,
    plan_fractions_delivered,
    plan_rt_images,
    plan_schedule,
    plan_sessions,
)
from rv.services import plans as plan_services
from rv.services import tolerance as tolerance_services
from rv.services.course_status import course_treatment_status_set
from rv.views.access import page_actions, requires
from rv.views.charts import dose_chart_svg


@requires(Action.CLINICAL_READ)
def patients(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")
    page = Paginator(patient_list(search=search), 50).get_page(request.GET.get("page"))
    return render(request, "rv/clinical_patients.html", {"page": page, "q": search})


@requires(Action.CLINICAL_READ)
def patient_chart(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient.objects.select_related("archive_patient"), pk=pk)
    courses = list(course_list_for_patient(patient=patient))
    plans = [plan for course in courses for plan in course.plans.all()]
    # A fixed number of queries whatever the number of courses and plans.
    prescriptions = current_prescriptions_by_course(course_ids=[c.pk for c in courses])
    delivered = plans_fractions_delivered(plans=plans)
    flags = plans_review_flags(plan_ids=[p.pk for p in plans])
    for course in courses:
        course.current_prescriptions = prescriptions[course.pk]  # type: ignore[attr-defined]
        for plan in course.plans.all():
            plan.delivered = delivered[plan.pk]  # type: ignore[attr-defined]
            plan.flags = flags[plan.pk]  # type: ignore[attr-defined]
    return render(request, "rv/chart.html", {"patient": patient, "courses": courses,
                                            "banner": patient_banner(patient=patient)})


def _beam_rows(plan: Plan) -> list[dict[str, Any]]:
    meterset: dict[int, list[float]] = {}
    for fg in plan.fraction_groups.all():
        for ref in fg.beam_refs.all():
            if ref.meterset is not None:
                meterset.setdefault(ref.beam_id, []).append(ref.meterset)
    beams = list(plan.beams.all())
    assignable = [b for b in beams if b.tolerance_table is None
                  or b.tolerance_table.source == ToleranceTable.Source.USER]
    tables = assignable_tables({b.machine_id for b in assignable}) if assignable else {}
    rows = []
    for beam in beams:
        rows.append({"beam": beam, "mu": meterset.get(beam.pk, []),
                     "gantry": beam.first("gantry"),
                     "gantry_end": beam.last("gantry") if beam.beam_type == "DYNAMIC" else None,
                     "collimator": beam.first("collimator"), "couch": beam.first("couch"),
                     "assign": AssignToleranceForm(machine_id=beam.machine_id,
                                                   tables=tables[beam.machine_id])
                     if beam in assignable else None})
    return rows


@requires(Action.CLINICAL_READ)
def plan_page(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        plan = plan_detail(pk=pk)
    except Plan.DoesNotExist:
        raise Http404("no such plan") from None
    machines = {b.machine for b in plan.beams.all() if b.machine} | {
        a.machine for a in plan.application_setups.all() if a.machine}
    chain = [p.pk for p in plan.revision_chain()]
    allowed = page_actions(request)
    # Read once, given to each selector that needs them (not read again by each).
    contributions = detail_contributions(plan=plan)
    sessions = plan_sessions(plan=plan)
    doses = chain_doses(plan=plan)
    delivered_dose = delivered_dose_by_reference(plan=plan, contributions=contributions,
                                                 sessions=sessions, doses=doses)
    return render(request, "rv/plan.html", {
        "banner": patient_banner(patient=plan.patient, course=plan.course),
        "plan": plan, "beams": _beam_rows(plan),
        "delivered": plan_fractions_delivered(plan=plan, sessions=sessions),
        "sessions": sessions,
        "device_records": plan_device_records(plan=plan), "images": plan_rt_images(plan=plan),
        "dose_chart": dose_chart_svg(dose_chart(plan=plan, contributions=contributions,
                                                delivered=delivered_dose, doses=doses)),
        "delivered_dose": delivered_dose,
        "appointments": plan_schedule(plan=plan, sessions=sessions),
        "activities": Appointment.Activity.choices[1:],
        "all_machines": TreatmentMachine.objects.order_by("name"),
        "couch_refs": CouchReference.objects.filter(plan_id__in=chain).select_related(
            "captured_by", "confirmed_by").order_by("beam_number"),
        "may_confirm_couch": Action.COUCH_CONFIRM in allowed,
        "machines": sorted(machines, key=lambda m: m.name),
        "may_schedule": Action.SCHEDULE in allowed,
        "may_course_status": Action.COURSE_STATUS in allowed,
        "course_statuses": [s for s in Course.TreatmentStatus.values
                            if s not in ("NOT_STARTED", "COMPLETED")],
        "today": timezone.localdate(),
        "weekdays": list(enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))),
        "approve_form": ApproveForm(), "reason_form": ReasonForm(),
        "move_form": MoveForm(patient_id=plan.patient_id),
        "may_approve": Action.PLAN_APPROVE in allowed,
        "may_hold": Action.PLAN_HOLD in allowed,
        "may_retire": Action.PLAN_RETIRE in allowed,
        "may_complete": Action.PLAN_COMPLETE in allowed,
        "may_move": Action.PLAN_MOVE in allowed,
        "may_edit_tolerance": Action.TOLERANCE_EDIT in allowed,
        "chain": plan.revision_chain()[1:],
        "rx_check": plan_prescription_check(plan=plan, contributions=contributions),
    })


def _act(request: HttpRequest, plan: Plan, action: Callable[[], object], done: str
         ) -> HttpResponseRedirect:
    try:
        action()
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("rv-plan", plan.pk)


@requires(Action.CLINICAL_READ)
@require_POST
def plan_action(request: HttpRequest, pk: int, action: str) -> HttpResponseRedirect:
    plan = get_object_or_404(Plan, pk=pk)
    user = request.user
    reason = request.POST.get("reason", "")
    actions: dict[str, tuple[Callable[[], object], str]] = {
        "approve": (lambda: plan_services.plan_approve(
            plan=plan, user=user, password=request.POST.get("password", "")),
            "Plan approved for treatment."),
        "hold": (lambda: plan_services.plan_hold(plan=plan, user=user, reason=reason),
                 "Plan put on hold."),
        "release": (lambda: plan_services.plan_release_hold(plan=plan, user=user),
                    "Plan released from hold."),
        "retire": (lambda: plan_services.plan_retire(plan=plan, user=user, reason=reason),
                   "Plan retired."),
        "complete": (lambda: plan_services.plan_complete(plan=plan, user=user),
                     "Plan completed."),
    }
    if action == "move":
        form = MoveForm(request.POST, patient_id=plan.patient_id)
        if not form.is_valid():
            messages.error(request, "Choose an active course of this patient.")
            return redirect("rv-plan", plan.pk)
        return _act(request, plan, lambda: plan_services.plan_move_to_course(
            plan=plan, user=user, course=form.cleaned_data["course"]), "Plan moved.")
    if action == "course-status":
        return _act(request, plan, lambda: course_treatment_status_set(
            course=plan.course, user=user, status=request.POST.get("status", ""),
            reason=reason), "Course status changed.")
    if action == "new-course":
        return _act(request, plan, lambda: plan_services.course_create(
            patient=plan.patient, user=user), "Course opened.")
    if action not in actions:
        return redirect("rv-plan", plan.pk)
    call, done = actions[action]
    return _act(request, plan, call, done)


@requires(Action.CLINICAL_READ)
@require_POST
def beam_assign_tolerance(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    beam = get_object_or_404(Beam.objects.select_related("plan"), pk=pk)
    form = AssignToleranceForm(request.POST, machine_id=beam.machine_id)
    if not form.is_valid():
        messages.error(request, "Choose a tolerance table of this beam's machine.")
        return redirect("rv-plan", beam.plan_id)
    return _act(request, beam.plan, lambda: tolerance_services.tolerance_table_assign(
        beam=beam, table=form.cleaned_data["table"], user=request.user),
        f"Tolerance table assigned to beam {beam.number}.")


@requires(Action.CLINICAL_READ)
def tolerance_tables(request: HttpRequest) -> HttpResponse:
    form = ToleranceTableForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tolerance_services.tolerance_table_create(
                user=request.user, machine=form.cleaned_data["machine"],
                label=form.cleaned_data["label"], values=form.tolerance_values())
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Tolerance table created.")
            return redirect("rv-tolerance-tables")
    tables = ToleranceTable.objects.filter(source=ToleranceTable.Source.USER).select_related(
        "machine").order_by("machine__name", "label", "-version")
    return render(request, "rv/tolerance_tables.html", {
        "tables": tables, "form": form, "fields": TOLERANCE_FIELDS,
        "may_edit_tolerance": can(request.user, Action.TOLERANCE_EDIT)})


@requires(Action.CLINICAL_READ)
def tolerance_table_edit(request: HttpRequest, pk: int) -> HttpResponse:
    table = get_object_or_404(ToleranceTable, pk=pk, source=ToleranceTable.Source.USER)
    form = ToleranceTableForm(request.POST or None, editing=True,
                              initial=table.values())
    if request.method == "POST" and form.is_valid():
        try:
            saved = tolerance_services.tolerance_table_update(
                table=table, user=request.user, values=form.tolerance_values())
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Saved as version {saved.version}."
                             if saved.pk != table.pk else "Saved.")
            return redirect("rv-tolerance-tables")
    return render(request, "rv/tolerance_table_edit.html", {"table": table, "form": form})
