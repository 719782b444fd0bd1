"""Archive pages: patients (searchable) and a study with its series."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from archive.models import Patient, Study
from archive.selectors import patient_list, series_list_for_study, study_list_for_patient
from rv.roles import Action
from rv.views.access import requires

# Series whose instances the archive page offers as images (rendered by rv.imaging)
IMAGE_MODALITIES = ("CT", "MR", "PT", "CR", "DX", "RTIMAGE", "OT", "US", "XA", "MG")


@requires(Action.CLINICAL_READ)
def patients(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")
    page = Paginator(patient_list(search=search), 50).get_page(request.GET.get("page"))
    return render(request, "rv/patients.html", {"page": page, "q": search})


@requires(Action.CLINICAL_READ)
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    return render(request, "rv/patient.html",
                  {"patient": patient, "studies": study_list_for_patient(patient=patient)})


@requires(Action.CLINICAL_READ)
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study.objects.select_related("patient"), pk=pk)
    series = series_list_for_study(study=study)
    return render(request, "rv/study.html", {"study": study, "series": series,
                                             "image_modalities": IMAGE_MODALITIES})
