"""Task lists (issue 15): "My tasks" (the user's own and their roles' open tasks, overdue
first), the overview of every task for physicists and physicians (filter, assign, cancel),
and the sign-off of a check. Thin doors into rv.services.tasks; reads in rv.task_selectors."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from rv.errors import DomainError
from rv.models import Task
from rv.roles import CLINICAL_ROLES, Action
from rv.services.tasks import RULES, task_assign, task_cancel, task_complete
from rv.task_selectors import my_open_tasks, subject_link, tasks_filtered
from rv.views.access import page_actions, requires

PAGE = 100


def _rows(tasks: Any, request: HttpRequest) -> list[dict[str, Any]]:
    allowed = page_actions(request)
    today = timezone.localdate()
    rows = []
    for task in tasks:
        rule = RULES[task.kind]
        rows.append({"task": task, "overdue": task.overdue(today), "link": subject_link(task),
                     "sign": rule.signed_here and rule.action in allowed,
                     "closed_by": "" if rule.signed_here else rule.closed_by})
    return rows


@requires(Action.CLINICAL_READ)
def my_tasks(request: HttpRequest) -> HttpResponse:
    page = Paginator(my_open_tasks(user=request.user), PAGE).get_page(request.GET.get("page"))
    return render(request, "rv/tasks.html", {
        "rows": _rows(page.object_list, request), "page": page,
        "today": timezone.localdate()})


def _assignees() -> list[tuple[str, str]]:
    people = (get_user_model().objects.filter(is_active=True, groups__name__in=CLINICAL_ROLES)
              .distinct().order_by("username").values_list("pk", "username"))
    return [(f"role:{r}", f"any {r}") for r in CLINICAL_ROLES] + [
        (f"user:{pk}", name) for pk, name in people]


@requires(Action.TASK_ASSIGN)
def overview(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    kind = request.GET.get("kind", "") if request.GET.get("kind") in Task.Kind.values else ""
    status = request.GET.get("status", Task.Status.OPEN)
    status = status if status in Task.Status.values else ""
    assignee = request.GET.get("assignee", "").strip()
    if assignee.startswith("user:"):
        assignee = (get_user_model().objects.filter(pk=assignee[5:] if assignee[5:].isdigit()
                                                    else 0)
                    .values_list("username", flat=True).first() or "-")
    overdue = True if request.GET.get("overdue") else None
    tasks = tasks_filtered(today=today, kind=kind, status=status, assignee=assignee,
                           overdue=overdue)
    page = Paginator(tasks, PAGE).get_page(request.GET.get("page"))
    assignees = _assignees()
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "rv/tasks_overview.html", {
        "rows": _rows(page.object_list, request), "page": page, "today": today,
        "kinds": Task.Kind.choices, "statuses": Task.Status.choices,
        "assignees": assignees, "assignee_options": _options(assignees), "chosen": request.GET,
        "query": query.urlencode()})


def _options(choices: list[tuple[str, str]]) -> str:
    """The assign select's options, made once for the page rather than once a row."""
    return format_html_join("", '<option value="{}">{}</option>', choices)


def _back(request: HttpRequest) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if target.startswith("/tasks/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("rv-tasks")


@requires(Action.CLINICAL_READ)
@require_POST
def complete(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    task = get_object_or_404(Task, pk=pk)
    try:
        task_complete(task=task, user=request.user, password=request.POST.get("password", ""),
                      comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{task.get_kind_display().capitalize()} signed off: "
                         f"{task.title}.")
    return _back(request)


@requires(Action.CLINICAL_READ)
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    task = get_object_or_404(Task, pk=pk)
    to = request.POST.get("assign_to", "")
    try:
        if not to:
            raise DomainError("Choose a person or a role to assign the task to.")
        if to.startswith("user:") and to[5:].isdigit():
            person = get_user_model().objects.filter(pk=int(to[5:])).first()
            if person is None:
                raise DomainError("There is no such user.")
            task = task_assign(task=task, user=request.user, to_user=person)
        else:
            task = task_assign(task=task, user=request.user, to_role=to.removeprefix("role:"))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        who = task.assigned_to.get_username() if task.assigned_to else f"any {task.assigned_role}"
        messages.success(request, f"Task assigned to {who}: {task.title}.")
    return _back(request)


@requires(Action.CLINICAL_READ)
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    task = get_object_or_404(Task, pk=pk)
    try:
        task_cancel(task=task, user=request.user, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Task cancelled: {task.title}.")
    return _back(request)
