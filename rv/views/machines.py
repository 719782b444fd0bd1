"""Treatment machines as a physicist sets them up for verification: the meterset tolerance
policy, beam-matched groups and whether the machine takes its work from the TDW-II worklist.
Thin doors into rv.services.machines and rv.services.workitems."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from rv.errors import DomainError
from rv.models import MachineGroup, TreatmentMachine
from rv.roles import EDIT_TOLERANCE, Action, may
from rv.services.machines import (
    machine_group_save,
    machine_meterset_policy_set,
    machine_prescription_tolerance_set,
)
from rv.services.workitems import machine_tdw_set
from rv.treatment_request import RequestInvalid, number
from rv.views.access import requires


@requires(Action.CLINICAL_READ)
def machines(request: HttpRequest) -> HttpResponse:
    return render(request, "rv/machines.html", {
        "machines": TreatmentMachine.objects.prefetch_related("groups").order_by("name"),
        "groups": MachineGroup.objects.prefetch_related("machines").order_by("name"),
        "may_edit": may(request.user, EDIT_TOLERANCE),
        "may_edit_machine": may(request.user, Action.MACHINE_EDIT),
        "rx_default": settings.RV_PRESCRIPTION_TOLERANCE_PERCENT})


@requires(Action.CLINICAL_READ)
@require_POST
def prescription_tolerance(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    machine = get_object_or_404(TreatmentMachine, pk=pk)
    try:
        machine_prescription_tolerance_set(
            machine=machine, user=request.user,
            percent=number(request.POST.get("prescription_tolerance_percent"),
                           "prescription tolerance"))
    except RequestInvalid as exc:
        messages.error(request, str(exc))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Prescription tolerance of {machine.name} saved.")
    return redirect("rv-machines")


@requires(Action.CLINICAL_READ)
@require_POST
def meterset_policy(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    machine = get_object_or_404(TreatmentMachine, pk=pk)
    try:
        machine_meterset_policy_set(
            machine=machine, user=request.user,
            absolute=number(request.POST.get("meterset_tolerance_mu"), "absolute tolerance"),
            percent=number(request.POST.get("meterset_tolerance_percent"), "percent tolerance"))
    except RequestInvalid as exc:
        messages.error(request, str(exc))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Meterset tolerance of {machine.name} saved.")
    return redirect("rv-machines")


@requires(Action.CLINICAL_READ)
@require_POST
def group_save(request: HttpRequest) -> HttpResponseRedirect:
    chosen = list(TreatmentMachine.objects.filter(
        pk__in=[int(x) for x in request.POST.getlist("machine") if x.isdigit()]))
    try:
        group = machine_group_save(name=request.POST.get("name", ""), machines=chosen,
                                   user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Beam-matched group {group.name} saved.")
    return redirect("rv-machines")


@requires(Action.CLINICAL_READ)
@require_POST
def tdw_delivery(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Mark the machine a TDW-II delivery device (it pulls its fractions from the worklist),
    or no longer (its open steps are cancelled)."""
    machine = get_object_or_404(TreatmentMachine, pk=pk)
    enabled = request.POST.get("tdw_delivery") == "on"
    try:
        machine_tdw_set(machine=machine, enabled=enabled, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{machine.name} " + (
            "takes its fractions from the TDW-II worklist." if enabled
            else "no longer takes its fractions from the worklist."))
    return redirect("rv-machines")
