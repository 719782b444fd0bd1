"""A physician's prescriptions on the web (issue 15): the page of one (its versions, the
plans it covers, sign, link a plan), the form to write one for a course (and sign it at
once), the form to amend one. Thin doors into rv.services.prescriptions."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from rv.errors import DomainError
from rv.models import Course, Plan, Prescription
from rv.prescription_forms import PrescriptionForm
from rv.prescription_selectors import covered_plans, prescription_detail
from rv.roles import Action, can
from rv.services.prescriptions import (
    prescription_amend,
    prescription_create,
    prescription_plan_link,
    prescription_sign,
)
from rv.views.access import requires


def _detail(pk: int) -> Prescription:
    try:
        return prescription_detail(pk=pk)
    except Prescription.DoesNotExist:
        raise Http404("no such prescription") from None


@requires(Action.CLINICAL_READ)
def prescription_page(request: HttpRequest, pk: int) -> HttpResponse:
    rx = _detail(pk)
    current = rx.status != Prescription.Status.SUPERSEDED
    newer = Prescription.objects.filter(previous_version=rx).first()
    return render(request, "rv/prescription.html", {
        "rx": rx, "versions": rx.versions(), "newer": newer,
        "plans": covered_plans(prescription=rx) if current else [],
        "course_plans": Plan.objects.filter(course=rx.course).select_related(
            "prescription_link").order_by("label", "revision") if current else [],
        "may_prescribe": can(request.user, Action.PRESCRIBE)})


@requires(Action.PRESCRIBE)
def prescription_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Write a prescription for course `pk`; with the password given, sign it at once."""
    course = get_object_or_404(Course.objects.select_related("patient"), pk=pk)
    form = PrescriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rx = prescription_create(course=course, user=request.user,
                                     data=form.prescription_input())
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            password = form.cleaned_data.get("password") or ""
            if not password:
                messages.success(request, f"Prescription for {rx.site} saved as a draft: "
                                 "sign it before plans are approved against it.")
                return redirect("rv-prescription", rx.pk)
            try:
                prescription_sign(prescription=rx, user=request.user, password=password)
            except DomainError as exc:
                messages.error(request, f"Saved as a draft, not signed: {exc.message}")
            else:
                messages.success(request, f"Prescription for {rx.site} signed.")
            return redirect("rv-prescription", rx.pk)
    return render(request, "rv/prescription_form.html", {
        "form": form, "course": course, "patient": course.patient, "amending": None,
        "dose_references": sorted({d for p in course.plans.prefetch_related("dose_references")
                                   for d in (r.description for r in p.dose_references.all())
                                   if d})})


@requires(Action.PRESCRIBE)
def prescription_amend_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Amend a prescription: a new signed version, the password again and a reason."""
    rx = _detail(pk)
    form = PrescriptionForm(request.POST or None, amending=True,
                            initial=PrescriptionForm.initial_of(rx))
    if request.method == "POST" and form.is_valid():
        try:
            new = prescription_amend(prescription=rx, user=request.user,
                                     password=form.cleaned_data["password"],
                                     data=form.prescription_input(),
                                     reason=form.cleaned_data["reason"])
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Prescription for {new.site} amended: version "
                             f"{new.version}, signed.")
            return redirect("rv-prescription", new.pk)
    course = rx.course
    return render(request, "rv/prescription_form.html", {
        "form": form, "course": course, "patient": course.patient, "amending": rx,
        "dose_references": []})


@requires(Action.CLINICAL_READ)
@require_POST
def prescription_action(request: HttpRequest, pk: int, action: str) -> HttpResponseRedirect:
    rx = get_object_or_404(Prescription, pk=pk)
    try:
        if action == "sign":
            prescription_sign(prescription=rx, user=request.user,
                              password=request.POST.get("password", ""))
            messages.success(request, f"Prescription for {rx.site} signed.")
        elif action == "link":
            raw = request.POST.get("plan", "")
            plan = Plan.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
            if plan is None:
                raise DomainError("Choose a plan of the course.")
            prescription_plan_link(prescription=rx, plan=plan, user=request.user,
                                   partial=request.POST.get("partial") == "on")
            messages.success(request, f"Plan {plan.label} linked to {rx.site}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("rv-prescription", rx.pk)
