"""Template context: what the logged-in user's role may do (the menu shows only that)."""

from __future__ import annotations

from django.http import HttpRequest

from rv.roles import PERMISSIONS, allowed_actions


def permissions(request: HttpRequest) -> dict[str, dict[str, bool]]:
    user = getattr(request, "user", None)
    allowed = allowed_actions(user) if user is not None else set()
    return {"rv_may": {action: action in allowed for action in PERMISSIONS}}
