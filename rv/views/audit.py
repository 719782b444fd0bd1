"""The audit trail page: admins and physicists browse and filter every audit event."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rv.filters import AuditEventFilter
from rv.models import AuditEvent
from rv.roles import Action
from rv.views.access import requires


@requires(Action.AUDIT_READ)
def audit(request: HttpRequest) -> HttpResponse:
    flt = AuditEventFilter(request.GET or None, queryset=AuditEvent.objects.order_by("-at", "-id"))
    page = Paginator(flt.qs, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "rv/audit.html", {"filter": flt, "page": page,
                                             "query": query.urlencode()})
