"""Pages for what machines send (issue 8): a session with its device records and images,
the image review page and its PNG, the physicists' unmatched records. Thin doors into
rv.services.images / rv.services.machine."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from archive.models import Instance
from rv.banner_selectors import patient_banner
from rv.errors import DomainError
from rv.imaging import CannotRender, render_instance
from rv.models import DeviceRecord, Plan, RTImageLink, Session
from rv.roles import Action, can
from rv.selectors import session_rt_images, unmatched_device_records
from rv.services.images import rt_image_review
from rv.services.machine import device_record_assign, device_record_review
from rv.treatment_request import SETTING_FIELDS, SETTING_WORDS
from rv.views.access import requires


def _window(request: HttpRequest) -> tuple[float | None, float | None]:
    """The user's ?wc=&ww= (both, width at least 1), else None: the image's own."""
    try:
        wc, ww = float(request.GET["wc"]), float(request.GET["ww"])
    except (KeyError, ValueError):
        return None, None
    return (wc, ww) if ww >= 1 else (None, None)


@requires(Action.CLINICAL_READ)
def session_page(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_object_or_404(
        Session.objects.select_related("plan__patient", "plan__course", "machine",
                                       "recorded_by")
        .select_related("clearance__checked_by", "reviewed_by")
        .prefetch_related("beams__beam", "channels__channel", "channels__setup",
                          "overrides__authorised_by", "doses__dose_reference"), pk=pk)
    for b in session.beams.all():
        b.settings = [getattr(b, n) for n in SETTING_FIELDS]  # type: ignore[attr-defined]
    return render(request, "rv/session.html", {
        "session": session, "plan": session.plan,
        "banner": patient_banner(patient=session.plan.patient, course=session.plan.course),
        "setting_words": [SETTING_WORDS[n] for n in SETTING_FIELDS],
        "may_review": can(request.user, Action.RECORD_REVIEW),
        "records": session.device_records.select_related("instance").order_by("created_at"),
        "images": session_rt_images(session=session)})


@requires(Action.CLINICAL_READ)
def instance_png(request: HttpRequest, pk: int) -> HttpResponse:
    """An archived image as PNG (windowed by ?wc=&ww= or the image's own values)."""
    instance = get_object_or_404(Instance, pk=pk)
    wc, ww = _window(request)
    try:
        data = render_instance(instance, center=wc, width=ww)
    except CannotRender as exc:
        return HttpResponse(exc.args[0], status=415, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@requires(Action.CLINICAL_READ)
def image_page(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(RTImageLink.objects.select_related(
        "instance", "plan__patient", "beam", "reviewed_by", "patient"), pk=pk)
    wc, ww = _window(request)
    problem = ""
    try:
        render_instance(image.instance, center=wc, width=ww)  # fills the cache, or says why
    except CannotRender as exc:
        problem = exc.args[0]
    query = urlencode({"wc": f"{wc:g}", "ww": f"{ww:g}"}) if wc is not None else ""
    src = reverse("rv-instance-png", args=[image.instance_id]) + (f"?{query}" if query else "")
    sessions = Session.objects.none()
    if image.plan_id and image.fraction_number:
        sessions = Session.objects.filter(
            plan_id__in=[p.pk for p in image.plan.revision_chain()],  # type: ignore[union-attr]
            fraction_number=image.fraction_number)
    patient = image.patient or (image.plan.patient if image.plan else None)
    return render(request, "rv/image.html", {
        "banner": patient_banner(patient=patient) if patient else None,
        "image": image, "src": src, "problem": problem, "wc": wc, "ww": ww,
        "sessions": sessions, "may_review": can(request.user, Action.IMAGE_REVIEW)})


@requires(Action.CLINICAL_READ)
@require_POST
def image_review(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    image = get_object_or_404(RTImageLink, pk=pk)
    approve = request.POST.get("decision") == "approve"
    try:
        rt_image_review(image=image, user=request.user, approve=approve,
                        comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Image approved." if approve else "Image rejected.")
    return redirect("rv-image", image.pk)


@requires(Action.CLINICAL_READ)
def device_records(request: HttpRequest) -> HttpResponse:
    records = list(unmatched_device_records())
    for r in records:
        patient = r.instance.series.study.patient
        r.candidates = list(Plan.objects.filter(  # type: ignore[attr-defined]
            patient__archive_patient=patient).order_by("label", "revision"))
    recent = DeviceRecord.objects.exclude(status=DeviceRecord.Status.UNMATCHED).select_related(
        "plan", "session")[:50]
    return render(request, "rv/device_records.html", {
        "records": records, "recent": recent,
        "may_assign": can(request.user, Action.RECORD_ASSIGN)})


@requires(Action.CLINICAL_READ)
@require_POST
def device_record_assign_view(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    record = get_object_or_404(DeviceRecord, pk=pk)
    plan = Plan.objects.filter(pk=request.POST.get("plan") or 0).first()
    if plan is None:
        messages.error(request, "Choose a plan.")
        return redirect("rv-device-records")
    try:
        record = device_record_assign(record=record, plan=plan, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Record assigned to {plan.label}: "
                         f"{record.get_status_display()}.")
    return redirect("rv-device-records")


@requires(Action.CLINICAL_READ)
@require_POST
def device_record_review_view(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    record = get_object_or_404(DeviceRecord, pk=pk)
    try:
        device_record_review(record=record, user=request.user,
                             comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Review recorded.")
    target = request.POST.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect("rv-device-records")
