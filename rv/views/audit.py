"""The audit trail page: admins and physicists browse and filter every audit event."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rv.filters import AuditEventFilter
from rv.models import AuditEvent
from rv.roles import VIEW_AUDIT, may


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    if not may(request.user, VIEW_AUDIT):
        raise PermissionDenied("Only an admin or physicist may view the audit trail.")
    flt = AuditEventFilter(request.GET or None, queryset=AuditEvent.objects.order_by("-at", "-id"))
    page = Paginator(flt.qs, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "rv/audit.html", {"filter": flt, "page": page,
                                             "query": query.urlencode()})
