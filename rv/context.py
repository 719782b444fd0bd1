"""Template context: what the logged-in user's role may do (the menu shows only that)."""

from __future__ import annotations

from django.http import HttpRequest

from rv.roles import Action, allowed_actions


def permissions(request: HttpRequest) -> dict[str, dict[str, bool]]:
    """`rv_may.<action>` for every rv.roles.Action, from the one matrix (rv.roles.can)."""
    allowed = allowed_actions(getattr(request, "user", None))
    return {"rv_may": {action.value: action in allowed for action in Action}}
