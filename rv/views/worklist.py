"""A TDW-II machine's worklist as the clinic sees it: the day's steps with their state,
readiness, performer and progress; a physicist reviews what a step flagged and releases a
stale claim. Thin doors into rv.services.workitems; the device's side is DICOM."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from rv.errors import DomainError
from rv.models import TreatmentMachine, Workitem
from rv.roles import Action, may
from rv.services.workitems import workitem_release, workitem_review
from rv.views.access import requires
from rv.views.console import day_param
from rv.worklist_selectors import machine_worklist


@requires(Action.CLINICAL_READ)
def worklist(request: HttpRequest, pk: int) -> HttpResponse:
    machine = get_object_or_404(TreatmentMachine, pk=pk)
    when = day_param(request)
    return render(request, "rv/worklist.html", {
        "machine": machine, "day": when,
        "steps": machine_worklist(machine_id=machine.pk, day=when),
        "may_review": may(request.user, Action.WORKITEM_REVIEW),
        "may_release": may(request.user, Action.WORKITEM_RELEASE)})


def _back(wi: Workitem) -> HttpResponseRedirect:
    day = timezone.localtime(wi.scheduled_start).date()
    return redirect(reverse("rv-machine-worklist", args=[wi.machine_id]) + f"?date={day}")


@requires(Action.CLINICAL_READ)
@require_POST
def review(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    wi = get_object_or_404(Workitem, pk=pk)
    try:
        workitem_review(workitem=wi, user=request.user,
                        password=request.POST.get("password", ""),
                        comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Fraction {wi.fraction_number} step reviewed.")
    return _back(wi)


@requires(Action.CLINICAL_READ)
@require_POST
def release(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    wi = get_object_or_404(Workitem, pk=pk)
    try:
        workitem_release(workitem=wi, user=request.user,
                         password=request.POST.get("password", ""),
                         reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Fraction {wi.fraction_number} released from "
                         f"{wi.performer_ae}: the fraction is free again.")
    return _back(wi)
