"""Template context: what the logged-in user's role may do (the menu shows only that), and
the count of their open tasks."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from rv.roles import Action
from rv.views.access import page_actions


def permissions(request: HttpRequest) -> dict[str, dict[str, bool]]:
    """`rv_may.<action>` for every rv.roles.Action, from the one matrix (rv.roles.can), as
    the page's door read it (rv.views.access.page_actions: once per request)."""
    allowed = page_actions(request)
    return {"rv_may": {action.value: action in allowed for action in Action}}


def tasks(request: HttpRequest) -> dict[str, object]:
    """`rv_tasks.open` / `rv_tasks.overdue`: the user's open tasks for the menu's count. One
    query, run only when a template reads it, once per request (rv.task_selectors)."""

    def counts() -> dict[str, int]:
        cached = getattr(request, "_rv_task_counts", None)
        if cached is None:
            from django.utils import timezone

            from rv.task_selectors import task_counts

            cached = task_counts(user=request.user, today=timezone.localdate())
            request._rv_task_counts = cached  # type: ignore[attr-defined]
        return cached

    return {"rv_tasks": SimpleLazyObject(counts)}
