"""Template context: what the logged-in user's role may do (the menu shows only that)."""

from __future__ import annotations

from django.http import HttpRequest

from rv.roles import PERMISSIONS, roles_of


def permissions(request: HttpRequest) -> dict[str, dict[str, bool]]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"rv_may": {}}
    roles = set(roles_of(user))
    superuser = bool(getattr(user, "is_superuser", False))
    return {"rv_may": {action: superuser or bool(roles & set(allowed))
                       for action, allowed in PERMISSIONS.items()}}
