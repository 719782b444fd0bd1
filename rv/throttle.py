"""Login throttling (django-axes, issue 12): who the client is, and what a locked-out login
attempt is answered. The counting and locking are axes's; the audit events are
rv.services.users.auth_event_record's (connected in rv.apps)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_MESSAGE = ("Too many failed logins for this user name from this address: try again "
                  "in {minutes} minutes or ask an admin.")


class ThrottleBackend(AxesStandaloneBackend):
    """django-axes's check, first of AUTHENTICATION_BACKENDS. Every login door Verity has
    (the login form, the admin's, the token endpoint) passes the request; a call without
    one (Django's test client, a shell) has no client to throttle and is not checked."""

    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return,arg-type]


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind a trusted reverse proxy
    (DJANGO_TRUST_PROXY) the address that proxy appended to X-Forwarded-For."""
    if getattr(settings, "RV_TRUST_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def locked_message() -> str:
    minutes = max(1, round(float(settings.AXES_COOLOFF_TIME) * 60))
    return LOCKED_MESSAGE.format(minutes=minutes)


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """429: JSON {"message"} for the API, the login form with the message for the web."""
    message = locked_message()
    if request.path.startswith("/api/"):
        return JsonResponse({"message": message}, status=429)
    from django.contrib.auth.forms import AuthenticationForm

    form = AuthenticationForm(request)
    return render(request, "registration/login.html", {"form": form, "locked": message},
                  status=429)
