"""The one permission door (issue 11): the roles, the matrix of who may do what, and
`require` / `can` over it. Every clinical write (services) and every clinical read (pages,
API, admin site) asks here; nothing else decides (docs/permissions.md).

The four roles of CONTRACT.md are Django groups created by a migration. A superuser is an
IT account: the admin site, users and DICOM nodes; it has no clinical right unless it is
also in a role group (the role decides, never the superuser flag)."""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

THERAPIST = "therapist"
PHYSICIST = "physicist"
PHYSICIAN = "physician"
ADMIN = "admin"
ALL_ROLES = (THERAPIST, PHYSICIST, PHYSICIAN, ADMIN)
CLINICAL_ROLES = (THERAPIST, PHYSICIST, PHYSICIAN)

User = AbstractBaseUser | AnonymousUser


class Action(StrEnum):
    """What a user may be allowed to do. The values are the template names
    (`rv_may.<value>`, rv.context)."""

    # reads
    CLINICAL_READ = "clinical_read"  # patients, courses, plans, sessions, appointments,
    #   records, images, charts, console, archive, tolerance tables, machine records
    HISTORY_READ = "view_history"    # treatment history across patients, its CSV, timelines
    AUDIT_READ = "view_audit"        # the audit trail
    EXPORT_READ = "export_read"      # the DICOM export queue
    NODE_READ = "node_read"          # the DICOM peers
    UPS_EVENTS_READ = "ups_events_read"  # UPS subscriptions and the event queue (issue 14)
    # clinical writes
    SCHEDULE = "schedule"            # schedule, move, cancel appointments
    SESSION_RECORD = "record"        # record a treatment session at the console / API
    PLAN_APPROVE = "approve"         # approve a plan for treatment (with an e-signature)
    PLAN_HOLD = "plan_hold"          # put on hold, release from hold
    PLAN_RETIRE = "plan_retire"
    PLAN_COMPLETE = "plan_complete"
    PLAN_MOVE = "plan_move"          # move a plan to another course
    COURSE_CREATE = "course_create"
    COURSE_STATUS = "course_status"  # break, suspend, stop, resume a course
    OVERRIDE = "override"            # sign an override of a verification violation
    TOLERANCE_EDIT = "edit_tolerance"  # define, change, assign tolerance tables
    MACHINE_EDIT = "edit_machine"    # add or change a treatment machine (admin site)
    IMAGE_REVIEW = "review_image"    # approve or reject an RT Image
    RECORD_ASSIGN = "assign_record"  # assign a machine's treatment record to a plan
    RECORD_REVIEW = "review_record"  # review what a treatment record flagged
    EXPORT_RETRY = "export_retry"    # send a failed export again
    COUCH_CONFIRM = "confirm_couch"  # a second person confirms couch positions of fraction 1
    WORKITEM_REVIEW = "review_workitem"  # release a continuation, clear a worklist flag
    WORKITEM_RELEASE = "release_workitem"  # end a stale IN PROGRESS step a device holds
    CHART_CHECK = "chart_check"      # sign off a first-fraction or weekly physics chart check
    PHYSICIAN_REVIEW = "physician_review"  # sign off a physician's weekly review
    TASK_ASSIGN = "assign_task"      # see every open task, assign or cancel one
    PRESCRIBE = "prescribe"          # write, sign, amend a prescription; link plans to it;
    #   override a stop beyond a prescription's total dose (rv.verification.OVERRIDE_ACTION)
    PATIENT_PHOTO = "patient_photo"  # upload a patient's photo for identification
    PATIENT_ALERT = "patient_alert"  # set or retire a patient alert (allergy, pacemaker ...)
    SETUP_NOTE = "setup_note"        # write a patient's or course's set-up notes, accessories
    # administration
    MANAGE_USERS = "manage_users"
    MANAGE_NODES = "manage_nodes"


A = Action
PERMISSIONS: dict[Action, tuple[str, ...]] = {
    A.CLINICAL_READ: CLINICAL_ROLES,
    # Treatment history and the audit trail as the README's matrix has them: the admin role
    # (records officer) reads them, a bare superuser does not.
    A.HISTORY_READ: (ADMIN, PHYSICIST, PHYSICIAN),
    A.AUDIT_READ: (ADMIN, PHYSICIST),
    A.EXPORT_READ: ALL_ROLES,
    A.NODE_READ: ALL_ROLES,
    A.UPS_EVENTS_READ: (ADMIN, PHYSICIST),
    A.SCHEDULE: (THERAPIST, PHYSICIST),
    A.SESSION_RECORD: (THERAPIST,),
    A.PLAN_APPROVE: (PHYSICIST, PHYSICIAN),
    A.PLAN_HOLD: (PHYSICIST, PHYSICIAN),
    A.PLAN_RETIRE: (PHYSICIST, PHYSICIAN),
    A.PLAN_COMPLETE: (PHYSICIST, PHYSICIAN),
    A.PLAN_MOVE: (PHYSICIST,),
    A.COURSE_CREATE: (PHYSICIST,),
    A.COURSE_STATUS: (PHYSICIST, PHYSICIAN),
    A.OVERRIDE: (PHYSICIST, PHYSICIAN),
    A.TOLERANCE_EDIT: (PHYSICIST,),
    A.MACHINE_EDIT: (PHYSICIST,),
    A.IMAGE_REVIEW: (THERAPIST, PHYSICIAN),
    A.RECORD_ASSIGN: (PHYSICIST,),
    A.RECORD_REVIEW: (PHYSICIST, PHYSICIAN),
    A.EXPORT_RETRY: (ADMIN, PHYSICIST),
    A.COUCH_CONFIRM: (THERAPIST, PHYSICIST),
    A.WORKITEM_REVIEW: (PHYSICIST, PHYSICIAN),
    A.WORKITEM_RELEASE: (PHYSICIST,),
    A.CHART_CHECK: (PHYSICIST,),
    A.PHYSICIAN_REVIEW: (PHYSICIAN,),
    A.TASK_ASSIGN: (PHYSICIST, PHYSICIAN),
    A.PRESCRIBE: (PHYSICIAN,),
    A.PATIENT_PHOTO: CLINICAL_ROLES,
    A.PATIENT_ALERT: CLINICAL_ROLES,
    A.SETUP_NOTE: (THERAPIST, PHYSICIST),
    A.MANAGE_USERS: (ADMIN,),
    A.MANAGE_NODES: (ADMIN,),
}

# What a superuser may do by the flag alone: the IT account's work, no patient data.
SUPERUSER_ACTIONS = frozenset({A.MANAGE_USERS, A.MANAGE_NODES, A.NODE_READ})

_WORDS: dict[Action, str] = {
    A.CLINICAL_READ: "see patient data", A.HISTORY_READ: "view the treatment history",
    A.AUDIT_READ: "view the audit trail", A.EXPORT_READ: "see the export queue",
    A.NODE_READ: "see the DICOM nodes", A.SCHEDULE: "schedule treatment",
    A.UPS_EVENTS_READ: "see the worklist's subscriptions and events",
    A.SESSION_RECORD: "record a treatment session",
    A.PLAN_APPROVE: "approve a plan for treatment",
    A.PLAN_HOLD: "put a plan on hold or release it", A.PLAN_RETIRE: "retire a plan",
    A.PLAN_COMPLETE: "complete a plan", A.PLAN_MOVE: "move a plan to another course",
    A.COURSE_CREATE: "open a course", A.COURSE_STATUS: "change a course's status",
    A.OVERRIDE: "authorise an override", A.TOLERANCE_EDIT: "change tolerance tables",
    A.MACHINE_EDIT: "change treatment machines",
    A.IMAGE_REVIEW: "approve or reject an image",
    A.RECORD_ASSIGN: "assign a treatment record to a plan",
    A.RECORD_REVIEW: "review what a treatment record flagged",
    A.EXPORT_RETRY: "send an export again",
    A.COUCH_CONFIRM: "confirm captured couch positions",
    A.WORKITEM_REVIEW: "review a worklist step", A.WORKITEM_RELEASE: "release a claimed step",
    A.CHART_CHECK: "sign off a physics chart check",
    A.PHYSICIAN_REVIEW: "sign off a physician's weekly review",
    A.TASK_ASSIGN: "assign or cancel a task",
    A.PRESCRIBE: "prescribe",
    A.PATIENT_PHOTO: "upload a patient's photo", A.PATIENT_ALERT: "set or retire a patient alert",
    A.SETUP_NOTE: "write set-up notes and accessories",
    A.MANAGE_USERS: "manage users and roles",
    A.MANAGE_NODES: "manage DICOM nodes",
}


def _who(action: Action) -> str:
    roles = list(PERMISSIONS[action])
    return roles[0] if len(roles) == 1 else f"{', '.join(roles[:-1])} or {roles[-1]}"


# One fixed refusal per action: it names the roles, never the user or what they lack.
MESSAGES: dict[Action, str] = {
    action: f"Only {'an' if _who(action)[0] in 'aeiou' else 'a'} {_who(action)} may "
            f"{_WORDS[action]}." for action in Action}

# The names before issue 11 (kept for callers on other branches).
SCHEDULE, RECORD, APPROVE, OVERRIDE = A.SCHEDULE, A.SESSION_RECORD, A.PLAN_APPROVE, A.OVERRIDE
EDIT_TOLERANCE, COURSE_STATUS = A.TOLERANCE_EDIT, A.COURSE_STATUS
MANAGE_USERS, MANAGE_NODES, VIEW_AUDIT = A.MANAGE_USERS, A.MANAGE_NODES, A.AUDIT_READ
REVIEW_IMAGE, ASSIGN_RECORD, REVIEW_RECORD = A.IMAGE_REVIEW, A.RECORD_ASSIGN, A.RECORD_REVIEW
VIEW_HISTORY = A.HISTORY_READ
CONFIRM_COUCH = A.COUCH_CONFIRM


def roles_of(user: User | None) -> list[str]:
    """The user's role groups, sorted (one query)."""
    if user is None or not user.is_authenticated:
        return []
    return sorted(user.groups.filter(  # type: ignore[union-attr,attr-defined]
        name__in=ALL_ROLES).values_list("name", flat=True))


def allowed_actions(user: User | None) -> set[Action]:
    """Every action the matrix allows the user (one query)."""
    if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
        return set()
    roles = set(roles_of(user))
    allowed = {action for action, who in PERMISSIONS.items() if roles & set(who)}
    if getattr(user, "is_superuser", False):
        allowed |= SUPERUSER_ACTIONS
    return allowed


def can(user: User | None, action: Action) -> bool:
    """Whether the matrix allows the user the action (menus, templates, buttons)."""
    return Action(action) in allowed_actions(user)


def require(user: User | None, action: Action) -> None:
    """THE door: raise rv.errors.PermissionDenied (the action's one message) unless the
    matrix allows the user the action."""
    from rv.errors import PermissionDenied

    if not can(user, action):
        raise PermissionDenied(MESSAGES[Action(action)])


may = can  # the name before issue 11
