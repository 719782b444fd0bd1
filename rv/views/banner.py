"""The patient in view (issue 15): the photo as the browser fetches it, the page where staff
upload the photo, set and retire alerts and write set-up notes, and the course page. Thin
doors into rv.services.banner."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from rv import errors
from rv.banner_forms import AlertForm, AlertRetireForm, PhotoForm, SetupNoteForm
from rv.banner_selectors import patient_alert_history, patient_banner, patient_photo_history
from rv.models import Course, Patient, PatientAlert, PatientPhoto, SetupNote
from rv.roles import Action, can
from rv.selectors import plan_fractions_delivered
from rv.services import banner as banner_services
from rv.views.access import requires

# The URL of a photo names one stored photo, whose bytes never change: cached for a year,
# by the browser only (private), and never sniffed as anything but an image.
PHOTO_CACHE = "private, max-age=31536000, immutable"


def _photo_response(request: HttpRequest, pk: int, photo_pk: int, field: str
                    ) -> HttpResponseBase:
    row = (PatientPhoto.objects.filter(pk=photo_pk, patient_id=pk)
           .values_list(field, "content_type", "sha256").first())
    if row is None:
        return HttpResponse("No such photo.", status=404,
                            content_type="text/plain; charset=utf-8")
    data, content_type, sha256 = row
    etag = f'"{sha256[:32]}{"-t" if field == "thumbnail" else ""}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        response = HttpResponse(bytes(data), content_type=content_type)
        response["Content-Disposition"] = \
            f'inline; filename="patient-{pk}-photo-{photo_pk}.jpg"'
    response["Cache-Control"] = PHOTO_CACHE
    response["ETag"] = etag
    response["X-Content-Type-Options"] = "nosniff"
    return response


@requires(Action.CLINICAL_READ)
@require_GET
def photo(request: HttpRequest, pk: int, photo_pk: int) -> HttpResponseBase:
    return _photo_response(request, pk, photo_pk, "image")


@requires(Action.CLINICAL_READ)
@require_GET
def photo_thumbnail(request: HttpRequest, pk: int, photo_pk: int) -> HttpResponseBase:
    return _photo_response(request, pk, photo_pk, "thumbnail")


def _next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        return target
    return default


def _setup_forms(patient: Patient, bound: SetupNoteForm | None) -> list[dict[str, Any]]:
    """A set-up notes form for the patient and each of their courses, filled in."""
    notes = {n.course_id: n for n in SetupNote.objects.filter(patient=patient)}
    rows: list[dict[str, Any]] = []
    for course in [None, *patient.courses.order_by("created_at", "id")]:
        key = course.pk if course else None
        note = notes.get(key)
        if bound is not None and (bound.data.get("course") or None) == (
                str(key) if key else None):
            form = bound
        else:
            form = SetupNoteForm(patient_id=patient.pk, initial={
                "course": key, "notes": note.notes if note else "",
                "accessories": "\n".join(note.accessories) if note else ""})
        rows.append({"course": course, "note": note, "form": form})
    return rows


@requires(Action.CLINICAL_READ)
def banner_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Photo, alerts, set-up notes and accessories of one patient: shown to every clinical
    user, the forms to those whose role may write them."""
    patient = get_object_or_404(Patient, pk=pk)
    here = request.path
    photo_form, alert_form = PhotoForm(), AlertForm()
    retire_form: AlertRetireForm | None = None
    setup_form: SetupNoteForm | None = None
    status = 200
    if request.method == "POST":
        what = request.POST.get("form", "")
        done, bound = _post(request, patient, what)
        if done:
            return redirect(_next(request, here))
        status = 400
        if isinstance(bound, PhotoForm):
            photo_form = bound
        elif isinstance(bound, AlertForm):
            alert_form = bound
        elif isinstance(bound, AlertRetireForm):
            retire_form = bound
        elif isinstance(bound, SetupNoteForm):
            setup_form = bound
    return render(request, "rv/patient_banner_edit.html", {
        "patient": patient, "banner": patient_banner(patient=patient),
        "photos": patient_photo_history(patient=patient),
        "alerts": patient_alert_history(patient=patient),
        "photo_form": photo_form, "alert_form": alert_form, "retire_form": retire_form,
        "setup_rows": _setup_forms(patient, setup_form),
        "next": _next(request, ""),
        "may_photo": can(request.user, Action.PATIENT_PHOTO),
        "may_alert": can(request.user, Action.PATIENT_ALERT),
        "may_setup": can(request.user, Action.SETUP_NOTE)}, status=status)


def _post(request: HttpRequest, patient: Patient, what: str) -> tuple[bool, Any]:
    """Do the posted form's action: (True, None) when done, else (False, the bound form
    with its errors). A role that may not is answered 403 (the service's message)."""
    form: Any
    try:
        if what == "photo":
            form = PhotoForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["photo"]
                banner_services.patient_photo_upload(
                    patient=patient, user=request.user,
                    data=upload.read(settings.RV_PHOTO_MAX_BYTES + 1))
                messages.success(request, "Photo saved.")
                return True, None
        elif what == "alert":
            form = AlertForm(request.POST)
            if form.is_valid():
                alert = banner_services.patient_alert_add(
                    patient=patient, kind=form.cleaned_data["kind"],
                    text=form.cleaned_data["text"], user=request.user)
                messages.success(request, f"Alert set: {alert}.")
                return True, None
        elif what == "retire":
            form = AlertRetireForm(request.POST)
            if form.is_valid():
                alert = get_object_or_404(PatientAlert, pk=form.cleaned_data["alert"],
                                          patient=patient)
                banner_services.patient_alert_retire(
                    alert=alert, reason=form.cleaned_data["reason"], user=request.user)
                messages.success(request, f"Alert retired: {alert}.")
                return True, None
        elif what == "setup":
            form = SetupNoteForm(request.POST, patient_id=patient.pk)
            if form.is_valid():
                banner_services.setup_note_set(
                    patient=patient, course=form.cleaned_data["course"],
                    notes=form.cleaned_data["notes"], accessories=form.accessory_list(),
                    user=request.user)
                messages.success(request, "Set-up notes saved.")
                return True, None
        else:
            messages.error(request, "Nothing to save.")
            return False, None
    except errors.PermissionDenied as exc:
        raise HttpForbidden(exc.message) from exc
    except errors.DomainError as exc:
        field = {"photo": "photo", "alert": "text", "retire": "reason",
                 "setup": "notes"}[what]
        form.add_error(field, exc.message)
    return False, form


@requires(Action.CLINICAL_READ)
def course_page(request: HttpRequest, pk: int) -> HttpResponse:
    course = get_object_or_404(Course.objects.select_related("patient"), pk=pk)
    plans = list(course.plans.prefetch_related("fraction_groups").order_by("label", "revision"))
    for plan in plans:
        plan.delivered = plan_fractions_delivered(plan=plan)  # type: ignore[attr-defined]
    return render(request, "rv/course.html", {
        "course": course, "patient": course.patient, "plans": plans,
        "course_note": SetupNote.objects.filter(course=course).select_related("updated_by")
        .first(),
        "banner": patient_banner(patient=course.patient, course=course)})
