"""Users and roles, for admins: a thin door into rv.services.users."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from rv.errors import DomainError
from rv.roles import ALL_ROLES, Action, roles_of
from rv.services import users as user_services
from rv.views.access import requires


@requires(Action.MANAGE_USERS)
def users(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        roles = request.POST.getlist("role")
        try:
            if request.POST.get("user"):
                target = get_object_or_404(User, pk=request.POST["user"])
                user_services.user_roles_set(by=request.user, user=target, roles=roles)
                active = request.POST.get("active") == "on"
                if "active" in request.POST and active != target.is_active:
                    user_services.user_active_set(by=request.user, user=target,
                                                  active=active)
                messages.success(request, f"Saved {target.username}.")
            else:
                made = user_services.user_create(
                    by=request.user, username=request.POST.get("username", ""),
                    password=request.POST.get("password", ""), roles=roles,
                    full_name=request.POST.get("full_name", ""))
                messages.success(request, f"Created {made.username}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("rv-users")
    rows = [{"user": u, "roles": roles_of(u)} for u in User.objects.order_by("username")]
    return render(request, "rv/users.html", {"rows": rows, "all_roles": ALL_ROLES})
