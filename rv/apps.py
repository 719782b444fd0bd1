from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _ip(request: Any) -> str:
    if request is None or not hasattr(request, "META"):
        return ""
    from rv.throttle import client_ip

    return client_ip(request)


# Thin doors: Django's auth signals are the only place a login is seen; each handler just
# calls the service that writes the audit event (no business logic in signals, DESIGN.md).
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from rv.services.users import auth_event_record

    auth_event_record(action="login", user=user, ip=_ip(request))


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from rv.services.users import auth_event_record

    auth_event_record(action="logout", user=user, ip=_ip(request))


def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None,
                  **kwargs: Any) -> None:
    from rv.services.users import auth_event_record

    auth_event_record(action="login_failed", user=None,
                      username=str(credentials.get("username", "")), ip=_ip(request))


def _locked_out(sender: Any, request: Any = None, username: Any = "", ip_address: Any = "",
                **kwargs: Any) -> None:
    """django-axes refused (or just locked) a login: audited like a failed login."""
    from rv.services.users import auth_event_record

    auth_event_record(action="locked_out", user=None, username=str(username or ""),
                      ip=str(ip_address or _ip(request)))


class RvConfig(AppConfig):
    name = "rv"
    verbose_name = "Record and verify"

    def ready(self) -> None:
        from django.contrib.auth.signals import (
            user_logged_in,
            user_logged_out,
            user_login_failed,
        )

        user_logged_in.connect(_logged_in, dispatch_uid="rv.audit.login")
        user_logged_out.connect(_logged_out, dispatch_uid="rv.audit.logout")
        user_login_failed.connect(_login_failed, dispatch_uid="rv.audit.login_failed")
        from axes.signals import user_locked_out

        user_locked_out.connect(_locked_out, dispatch_uid="rv.audit.locked_out")
