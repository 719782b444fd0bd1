"""Reads of the task lists (issue 15): a user's own and their roles' open tasks, the counts
the menu shows, every open task for the physicist's overview. Each is one query (plus the
page's own, and one for each kind of subject a page's rows have beyond patient and plan),
whatever the number of tasks: subjects come joined or in one query, never one by one."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db.models import Count, Q, QuerySet

from rv.models import Task
from rv.roles import ALL_ROLES

User = AbstractBaseUser | AnonymousUser
OPEN = Task.Status.OPEN
SUBJECTS = ("patient", "course", "plan", "session", "image", "device_record",
            "workitem__machine", "assigned_to", "completed_by")
# The pages' share of them: joined, what every row shows; the others read in one query each
# for the whole page, and only when a row has one (an image, a worklist step, a sign-off).
# Eleven joins cost PostgreSQL about 20 ms to plan a query (docs/bench-history.md).
PAGE_JOINED = ("patient", "plan", "assigned_to")
PAGE_PREFETCHED = ("image", "workitem__machine", "completed_by")


def _for_page(qs: QuerySet[Task]) -> QuerySet[Task]:
    return qs.select_related(*PAGE_JOINED).prefetch_related(*PAGE_PREFETCHED)


def mine(user: User) -> Q:
    """Tasks given to the user, and their roles' tasks given to nobody in particular (the
    roles read in a subquery: no query of its own)."""
    if not user.is_authenticated:
        return Q(pk__in=[])
    roles = Group.objects.filter(user=user.pk, name__in=ALL_ROLES).values("name")
    return Q(assigned_to=user.pk) | Q(assigned_to__isnull=True, assigned_role__in=roles)


def my_open_tasks(*, user: User) -> QuerySet[Task]:
    """The user's open tasks, overdue first (the earliest due date first), with what the
    page shows of their subjects."""
    return _for_page(Task.objects.filter(mine(user), status=OPEN)).order_by("due_date", "id")


def task_counts(*, user: User, today: date) -> dict[str, int]:
    """{"open": n, "overdue": m} of the user's open tasks: one query (the menu's count)."""
    got = Task.objects.filter(mine(user), status=OPEN).aggregate(
        open=Count("id"), overdue=Count("id", filter=Q(due_date__lt=today)))
    return {"open": int(got["open"] or 0), "overdue": int(got["overdue"] or 0)}


def tasks_filtered(*, today: date, kind: str = "", status: str = "", assignee: str = "",
                   overdue: bool | None = None, user: User | None = None,
                   patient: int | None = None) -> QuerySet[Task]:
    """Tasks for the overview and the API. `assignee`: a user name, or "role:<role>" (the
    role's tasks given to nobody in particular); `user`: only those `mine(user)`. With what
    the pages show of their subjects (the API joins its own)."""
    qs: QuerySet[Task] = _for_page(Task.objects.all())
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    if assignee.startswith("role:"):
        qs = qs.filter(assigned_role=assignee[5:], assigned_to__isnull=True)
    elif assignee:
        qs = qs.filter(assigned_to__username=assignee)
    if overdue is not None:
        late = Q(status=OPEN, due_date__lt=today)
        qs = qs.filter(late) if overdue else qs.exclude(late)
    if user is not None:
        qs = qs.filter(mine(user))
    if patient is not None:
        qs = qs.filter(patient_id=patient)
    return qs.order_by("due_date", "id")


def subject_link(task: Task) -> tuple[str, str]:
    """(label, URL) of the page where the task's work is done."""
    from django.urls import reverse
    from django.utils import timezone

    if task.kind == Task.Kind.UNMATCHED_RECORD:
        return "Machine records", reverse("rv-device-records")
    if task.image is not None:
        return f"Image {task.image.label or task.image_id}", reverse("rv-image",
                                                                     args=[task.image_id])
    if task.workitem is not None:
        day = timezone.localtime(task.workitem.scheduled_start).date()
        return (f"Worklist of {task.workitem.machine.name}",
                reverse("rv-machine-worklist", args=[task.workitem.machine_id])
                + f"?date={day}")
    if task.kind in (Task.Kind.SESSION_REVIEW, Task.Kind.OVERRIDE_REVIEW) and task.session_id:
        return f"Session {task.session_id}", reverse("rv-session", args=[task.session_id])
    if task.plan is not None:
        return f"Plan {task.plan.label}", reverse("rv-plan", args=[task.plan_id])
    return "", ""
