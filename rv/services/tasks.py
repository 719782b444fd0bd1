"""Task lists (issue 15): the one door that writes rv.models.Task. See docs/tasks.md.

Tasks are made by the events that call for them, in the event's own transaction, by the
service that handles the event (never by a signal): `tasks_after_session` (sessions._save),
`tasks_after_image` (images.rt_image_link), `tasks_after_device_record`
(machine.device_record_receive / _apply), `tasks_after_workitem` (workitems._issue,
workitem_actions._end). A dedupe key per task (`Task.key`, unique) means a repeated event
never makes a second task. Where the task's work is a signed review elsewhere (a session's
review, an image's, an unmatched record's assignment, a worklist step's review), doing that
review closes the task (`tasks_close`); the check tasks are signed off here
(`task_complete`, password again through rv.services.esign, audited).

Every fifth fraction delivered of a plan (over its revisions) makes both the physicist's
weekly chart check and the physician's weekly review: "weekly" counted in fractions, as the
weekly treatment management of five fractions is, so a patient on a break is not reviewed
for nothing and a patient treated twice a day is reviewed as often as the fractions demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from rv.errors import Conflict, ValidationError
from rv.models import AuditEvent, DeviceRecord, RTImageLink, Session, Task, Workitem
from rv.roles import PERMISSIONS, PHYSICIAN, PHYSICIST, Action, can, require
from rv.services.audit import audit_record
from rv.services.esign import SignatureRefused, esign_refusal_audit, esign_verify

User = AbstractBaseUser | AnonymousUser
K = Task.Kind
S = Task.Status
SYSTEM = "verity"  # the audit's username for what Verity does by itself
WEEKLY_EVERY = 5   # fractions between weekly checks (and physician reviews)


@dataclass(frozen=True)
class Rule:
    """Who does a kind of task, within how many working days, and how it is closed."""

    role: str               # assigned to this role when made
    action: Action          # what doing it needs (rv.roles)
    due_working_days: int   # after the day of the event (Monday to Friday)
    signed_here: bool       # True: task_complete with a password; else the review closes it
    closed_by: str = ""     # for the others: what closes it, for people


RULES: dict[str, Rule] = {
    K.FIRST_FRACTION_CHECK: Rule(PHYSICIST, Action.CHART_CHECK, 1, True),
    K.WEEKLY_PHYSICS_CHECK: Rule(PHYSICIST, Action.CHART_CHECK, 2, True),
    K.PHYSICIAN_REVIEW: Rule(PHYSICIAN, Action.PHYSICIAN_REVIEW, 2, True),
    K.OVERRIDE_REVIEW: Rule(PHYSICIAN, Action.RECORD_REVIEW, 1, True),
    K.SESSION_REVIEW: Rule(PHYSICIST, Action.RECORD_REVIEW, 1, False,
                           "the session's review (its page: Review)"),
    K.IMAGE_REVIEW: Rule(PHYSICIAN, Action.IMAGE_REVIEW, 1, False,
                         "the image's approval or rejection (its page)"),
    K.UNMATCHED_RECORD: Rule(PHYSICIST, Action.RECORD_ASSIGN, 1, False,
                             "assigning the record to a plan (Machine records)"),
    K.WORKITEM_REVIEW: Rule(PHYSICIST, Action.WORKITEM_REVIEW, 0, False,
                            "the step's review (the machine's worklist)"),
}


def working_days_after(day: date, n: int) -> date:
    """`day` plus n working days (Monday to Friday); n = 0 is `day` itself."""
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def due_for(kind: str, *, when: datetime | date | None = None) -> date:
    start = (timezone.localdate(when) if isinstance(when, datetime)
             else when or timezone.localdate())
    return working_days_after(start, RULES[kind].due_working_days)


# --- made by events ------------------------------------------------------------------------

@transaction.atomic
def task_create(*, kind: str, key: str, title: str, due_date: date,
                event: AuditEvent | None = None, **subject: Any) -> Task:
    """Internal (the event hooks below): a new OPEN task for the kind's role, or the task the
    key already made (whatever its status): one event never makes two tasks. `subject`:
    patient, course, plan, session, image, device_record, workitem, fraction_number."""
    existing = Task.objects.filter(key=key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():  # a concurrent twin's insert loses here, not the caller
            task = Task.objects.create(kind=kind, key=key, title=title[:200],
                                       due_date=due_date, assigned_role=RULES[kind].role,
                                       event=event, **subject)
            audit_record(action="task.create", obj=task, username=SYSTEM, details={
                "kind": kind, "key": key, "title": task.title, "due_date": due_date,
                "role": task.assigned_role, "event": event.pk if event else None})
    except IntegrityError:
        return Task.objects.get(key=key)
    return task


def _root(session: Session) -> int:
    """The first revision of the session's plan: fractions count over the chain."""
    return session.plan.revision_chain()[-1].pk


def tasks_after_session(*, session: Session, fractions_delivered: int, overrides: int,
                        event: AuditEvent | None) -> list[Task]:
    """A session was recorded (console or machine), in its transaction, after the plan's
    deliveries were counted: the first-fraction check after the first fraction delivered;
    the weekly physics check and physician review after every fifth; a NOT_VERIFIED
    session's review; the review of a session's overrides."""
    plan = session.plan
    common = {"patient_id": plan.patient_id, "course_id": plan.course_id, "plan": plan}
    when = session.treated_at
    made: list[Task] = []
    n = fractions_delivered
    if session.fraction_complete and n == 1:
        made.append(task_create(
            kind=K.FIRST_FRACTION_CHECK, key=f"first_fraction:plan{_root(session)}",
            title=f"First-fraction double check of {plan.label}",
            due_date=due_for(K.FIRST_FRACTION_CHECK, when=when), event=event,
            session=session, fraction_number=1, **common))
    if session.fraction_complete and n and n % WEEKLY_EVERY == 0:
        root = _root(session)
        made.append(task_create(
            kind=K.WEEKLY_PHYSICS_CHECK, key=f"weekly_physics:plan{root}:fx{n}",
            title=f"Weekly physics chart check of {plan.label}: fractions "
                  f"{n - WEEKLY_EVERY + 1}-{n}",
            due_date=due_for(K.WEEKLY_PHYSICS_CHECK, when=when), event=event,
            session=session, fraction_number=n, **common))
        made.append(task_create(
            kind=K.PHYSICIAN_REVIEW, key=f"physician_review:plan{root}:fx{n}",
            title=f"Physician weekly review of {plan.label} after fraction {n}",
            due_date=due_for(K.PHYSICIAN_REVIEW, when=when), event=event,
            session=session, fraction_number=n, **common))
    label = f"{plan.label} fraction {session.fraction_number}"
    if session.verification_status == "NOT_VERIFIED":
        made.append(task_create(
            kind=K.SESSION_REVIEW, key=f"session_review:session{session.pk}",
            title=f"{label} is NOT_VERIFIED: review the session",
            due_date=due_for(K.SESSION_REVIEW, when=when), event=event, session=session,
            fraction_number=session.fraction_number, **common))
    if overrides:
        made.append(task_create(
            kind=K.OVERRIDE_REVIEW, key=f"override_review:session{session.pk}",
            title=f"{label}: {overrides} override{'s' if overrides > 1 else ''} to review",
            due_date=due_for(K.OVERRIDE_REVIEW, when=when), event=event, session=session,
            fraction_number=session.fraction_number, **common))
    return made


def tasks_after_image(*, image: RTImageLink, event: AuditEvent | None) -> Task | None:
    """An RT Image was linked: a portal or kV image awaits review (a DRR is the plan's
    reference, not a treatment image: no task)."""
    if image.kind == RTImageLink.Kind.DRR or image.review_status != RTImageLink.Review.PENDING:
        return None
    plan = image.plan
    where = f" of {plan.label}" if plan else ""
    fraction = f" fraction {image.fraction_number}" if image.fraction_number else ""
    return task_create(
        kind=K.IMAGE_REVIEW, key=f"image_review:image{image.pk}",
        title=f"{image.get_kind_display()} image {image.label or image.pk}{where}{fraction} "
              "to review",
        due_date=due_for(K.IMAGE_REVIEW), event=event, image=image,
        patient_id=image.patient_id, plan=plan, course_id=plan.course_id if plan else None,
        fraction_number=image.fraction_number)


def tasks_image_tied(*, image: RTImageLink) -> None:
    """An image received before its plan was tied to it: its open task follows."""
    if image.plan is not None:
        Task.objects.filter(image=image, status=S.OPEN).update(
            plan=image.plan, course_id=image.plan.course_id, patient_id=image.patient_id)


def tasks_after_device_record(*, record: DeviceRecord, event: AuditEvent | None
                              ) -> Task | None:
    """A machine's treatment record found no plan (UNMATCHED): a physicist assigns it."""
    if record.status != DeviceRecord.Status.UNMATCHED:
        return None
    from rv.models import Patient

    patient = (record.plan.patient if record.plan is not None else Patient.objects.filter(
        archive_patient_id=record.instance.series.study.patient_id).first())
    return task_create(
        kind=K.UNMATCHED_RECORD, key=f"unmatched_record:record{record.pk}",
        title=f"Treatment record from {record.machine_name or 'a machine'}"
              f"{f' (fraction {record.fraction_number})' if record.fraction_number else ''}: "
              "no plan matched",
        due_date=due_for(K.UNMATCHED_RECORD), event=event, device_record=record,
        patient=patient, fraction_number=record.fraction_number)


def tasks_after_workitem(*, workitem: Workitem, event: AuditEvent | None) -> Task | None:
    """A TDW-II worklist step is flagged for a physicist's review (a continuation after a
    machine stop or a differing record; an ended step whose records do not add up)."""
    if not workitem.flagged:
        return None
    plan = workitem.plan
    today = timezone.localdate()
    return task_create(
        kind=K.WORKITEM_REVIEW, key=f"workitem_review:workitem{workitem.pk}",
        title=f"Worklist step for {plan.label} fraction {workitem.fraction_number} on "
              f"{workitem.machine.name}: flagged for review",
        due_date=max(today, timezone.localdate(workitem.scheduled_start)), event=event,
        workitem=workitem, plan=plan, patient_id=plan.patient_id, course_id=plan.course_id,
        fraction_number=workitem.fraction_number)


def tasks_close(*, kind: str, user: User | None, action: str, username: str = "",
                **subject: Any) -> int:
    """The review a task stands for was done (`action`, its audit action): the open tasks
    of `kind` on `subject` (session=, image=, device_record=, workitem=) are DONE, by the
    reviewer. Runs in the review's transaction; returns how many were closed."""
    return _finish(kind=kind, status=S.DONE, user=user, action=action, username=username,
                   comment="", **subject)


def tasks_cancel_for(*, kind: str, reason: str, **subject: Any) -> int:
    """What the open tasks of `kind` on `subject` were about no longer stands (a flagged
    worklist step Verity cancelled and replaced): CANCELLED with the reason."""
    return _finish(kind=kind, status=S.CANCELLED, user=None, action="", username=SYSTEM,
                   comment=reason, **subject)


def _finish(*, kind: str, status: str, user: User | None, action: str, username: str,
            comment: str, **subject: Any) -> int:
    now = timezone.now()
    real = user if user is not None and user.is_authenticated else None
    count = 0
    for task in Task.objects.select_for_update().filter(kind=kind, status=S.OPEN, **subject):
        task.status, task.completed_at, task.comment = status, now, comment
        task.completed_by, task.closed_by_action = cast(Any, real), action
        task.save(update_fields=["status", "completed_at", "comment", "completed_by",
                                 "closed_by_action"])
        audit_record(action="task.close" if status == S.DONE else "task.cancel", obj=task,
                     user=real, username=username, details={
                         "kind": kind, "by": action, "reason": comment})
        count += 1
    return count


# --- a person's part -------------------------------------------------------------------------

def task_complete(*, task: Task, user: User, password: str, comment: str = "") -> Task:
    """Sign off a check task (first-fraction, weekly physics, physician review, overrides):
    the user's role must do the kind (rv.roles), and they sign with their password again
    (rv.services.esign; a refusal is audited in a transaction of its own). A task that a
    review elsewhere closes is refused here, saying which."""
    rule = RULES[task.kind]
    require(user, rule.action)
    if not rule.signed_here:
        raise ValidationError(f"This task closes with {rule.closed_by}: do that review, "
                              "and the task closes with it.")
    try:
        esign_verify(username=user.get_username(), password=password, action=rule.action,
                     by=user, subject=task)
    except SignatureRefused as exc:  # audited even inside a caller's transaction
        esign_refusal_audit(exc)
        raise
    return _complete(pk=task.pk, user=user, comment=comment.strip())


@transaction.atomic
def _complete(*, pk: int, user: User, comment: str) -> Task:
    task = Task.objects.select_for_update().get(pk=pk)
    _still_open(task)
    task.status, task.completed_at, task.comment = S.DONE, timezone.now(), comment
    task.completed_by, task.closed_by_action = cast(Any, user), "task.complete"
    task.save(update_fields=["status", "completed_at", "comment", "completed_by",
                             "closed_by_action"])
    audit_record(action="task.complete", obj=task, user=user, details={
        "kind": task.kind, "title": task.title, "comment": comment, "signed": True,
        "due_date": task.due_date, "overdue": task.due_date < timezone.localdate(),
        "patient": task.patient_id, "plan": task.plan_id, "session": task.session_id})
    return task


def _still_open(task: Task) -> None:
    if task.status == S.DONE:
        who = task.completed_by.get_username() if task.completed_by else "a review"
        raise Conflict(f"This task has been completed by {who} already.")
    if task.status == S.CANCELLED:
        raise ValidationError("This task has been cancelled.")


@transaction.atomic
def task_assign(*, task: Task, user: User, to_user: AbstractBaseUser | None = None,
                to_role: str = "") -> Task:
    """Give an open task to a person (who must be able to do it) or back to a role (which
    must be one that can): a physicist or physician assigns."""
    require(user, Action.TASK_ASSIGN)
    task = Task.objects.select_for_update().get(pk=task.pk)
    _still_open(task)
    rule = RULES[task.kind]
    if (to_user is None) == (not to_role):
        raise ValidationError("Assign the task to a person or to a role.")
    before = {"user": task.assigned_to.get_username() if task.assigned_to else None,
              "role": task.assigned_role}
    if to_user is not None:
        to_user = get_user_model().objects.filter(pk=to_user.pk).first()
        if to_user is None or not to_user.is_active or not can(to_user, rule.action):
            raise ValidationError(f"{getattr(to_user, 'username', 'That user')} may not do "
                                  f"a {task.get_kind_display()}.")
        task.assigned_to = cast(Any, to_user)
    else:
        if to_role not in PERMISSIONS[rule.action]:
            raise ValidationError(f"The {to_role or '(none)'} role may not do a "
                                  f"{task.get_kind_display()}.")
        task.assigned_role, task.assigned_to = to_role, None
    task.save(update_fields=["assigned_role", "assigned_to"])
    audit_record(action="task.assign", obj=task, user=user, details={
        "kind": task.kind, "from": before,
        "to": {"user": to_user.get_username() if to_user else None, "role": task.assigned_role}})
    return task


@transaction.atomic
def task_cancel(*, task: Task, user: User, reason: str) -> Task:
    """A physicist or physician withdraws an open task that no longer stands (say why)."""
    require(user, Action.TASK_ASSIGN)
    if not reason.strip():
        raise ValidationError("Say why the task is cancelled.")
    task = Task.objects.select_for_update().get(pk=task.pk)
    _still_open(task)
    task.status, task.completed_at, task.comment = S.CANCELLED, timezone.now(), reason.strip()
    task.completed_by, task.closed_by_action = cast(Any, user), "task.cancel"
    task.save(update_fields=["status", "completed_at", "comment", "completed_by",
                             "closed_by_action"])
    audit_record(action="task.cancel", obj=task, user=user, details={
        "kind": task.kind, "title": task.title, "reason": task.comment})
    return task
