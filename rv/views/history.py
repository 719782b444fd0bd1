"""The treatment history pages (admins, physicists, physicians): the filter form, keyset
pages of delivered beams, the same rows as CSV, and one patient's timeline."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from rv.api.history import csv_response
from rv.filters import HIDDEN_ON_PAGE, HistoryFilter
from rv.history import Cursor, history_csv, history_deliveries, history_page, patient_timeline
from rv.models import Patient
from rv.roles import Action
from rv.views.access import requires


@requires(Action.HISTORY_READ)
def history(request: HttpRequest) -> HttpResponse:
    flt = HistoryFilter(request.GET, queryset=history_deliveries())
    try:
        cursor = Cursor.decode(request.GET["cursor"]) if request.GET.get("cursor") else None
    except ValueError:
        cursor = None
    page = history_page(qs=flt.qs, cursor=cursor) if flt.is_valid() else None
    query = QueryDict(mutable=True)  # the filters in use, for the pager and CSV links
    for key, values in request.GET.lists():
        if key != "cursor" and any(values):
            query.setlist(key, [v for v in values if v])
    form = flt.form
    return render(request, "rv/history.html", {
        "filter": flt, "page": page, "query": query.urlencode(),
        "shown": [f for f in form if f.name not in HIDDEN_ON_PAGE],
        "hidden": [f for f in form if f.name in HIDDEN_ON_PAGE and f.value()],
        "next": page.next.encode() if page and page.next else "",
        "previous": page.previous.encode() if page and page.previous else ""})


@requires(Action.HISTORY_READ)
def history_csv_download(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    flt = HistoryFilter(request.GET, queryset=history_deliveries())
    if not flt.is_valid():
        return HttpResponse(f"Bad filter: {flt.errors.as_text()}", status=400,
                            content_type="text/plain")
    return csv_response(history_csv(qs=flt.qs))


@requires(Action.HISTORY_READ)
def patient_history(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    return render(request, "rv/history_patient.html", {
        "patient": patient, "sessions": patient_timeline(patient=patient)})
